/**
 * The kinds of media the service makes: each task type produces one, it names the storage folder
 * of the output (`projects/{project_id}/{kind}/...`) and maps to Payload's media type.
 */
export const MEDIA_KINDS = ['video', 'image', 'audio', 'animation'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];
