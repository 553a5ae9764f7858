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

/** An object's key and size, as `list` gives them. */
export interface ListedObject {
  readonly key: string;
  readonly size: number;
}

/**
 * Keys of the models area, `models/<name>/<version>/<file>`: readable with `get` and `list` (the
 * model repository's object-storage source), never written or handed out by the service.
 */
const MODEL_KEY = /^models(\/[A-Za-z0-9_.-]+)+$/;

export function isModelKey(key: string): boolean {
  return MODEL_KEY.test(key) && !key.split('/').some((p) => p === '.' || p === '..');
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
  /** null when the object does not exist. Also reads model keys (`models/...`, see isModelKey). */
  abstract get(key: string): Promise<ObjectStream | null>;
  /** Objects under `prefix` (a models area folder, `models/...`/), in key order. */
  abstract list(prefix: string): Promise<ListedObject[]>;
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
