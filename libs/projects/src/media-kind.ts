/**
 * The kinds of media the service makes: each task type produces one, it names the storage folder
 * of the output (`projects/{project_id}/{kind}/...`) and maps to Payload's media type.
 * `analysis` is a JSON document about input media (analyze_character), not media itself.
 */
export const MEDIA_KINDS = ['video', 'image', 'audio', 'animation', 'analysis'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];
