import type { Readable } from 'node:stream';

/** Where an object's bytes come from when it is stored. */
export type StorageBody =
  | { readonly kind: 'buffer'; readonly data: Buffer }
  | { readonly kind: 'file'; readonly path: string };

export interface StoredObject {
  readonly key: string;
  readonly size: number;
  readonly contentType: string;
}

export interface ObjectStream {
  readonly stream: Readable;
  readonly size: number;
  readonly contentType: string;
}

/**
 * Object storage for task outputs and inputs. Keys are always project-scoped
 * (`projects/{project_id}/...`, see @app/projects mediaOutputKey); drivers refuse anything else.
 */
export abstract class StorageDriver {
  abstract readonly name: string;
  abstract put(key: string, body: StorageBody, contentType: string): Promise<StoredObject>;
  /** null when the object does not exist. */
  abstract get(key: string): Promise<ObjectStream | null>;
  abstract delete(key: string): Promise<void>;
  /** A URL a client can download the object from without our API key. */
  abstract url(key: string): Promise<string>;
  /** Reachability check for readiness probes. */
  abstract check(): Promise<void>;
}

const TYPES: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  mp4: 'video/mp4',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
  json: 'application/json',
};

export function contentTypeFor(key: string): string {
  const ext = key.slice(key.lastIndexOf('.') + 1).toLowerCase();
  return TYPES[ext] ?? 'application/octet-stream';
}
