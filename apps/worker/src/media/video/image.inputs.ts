import sharp, { type Sharp } from 'sharp';
import { InputFetchError } from '../../inputs/input-fetch.error';
import type { InputFetcher } from '../../inputs/input-fetcher';

/** At most this many downloads at once. */
const FETCH_CONCURRENCY = 4;

export interface ImageInputRequest {
  /** The task_data field, e.g. `task_data.storyboard_images[1]`. */
  field: string;
  url: string;
}

export interface ImageInput extends ImageInputRequest {
  data: Buffer;
  /** Upright size (EXIF orientation applied). */
  width: number;
  height: number;
}

export interface FetchImagesOptions {
  projectId: string;
  signal: AbortSignal;
  /** Called after each image arrived and was checked, with the number done so far. */
  onFetched?: (done: number) => Promise<void>;
}

/**
 * Fetches image inputs a few at a time and checks that each is an image of sane size, so that a
 * bad URL fails the task before any frame is rendered. The same URL is fetched once. The first
 * failure stops the other downloads; a cancelled task throws its own reason.
 */
export async function fetchImages(
  fetcher: InputFetcher,
  requests: readonly ImageInputRequest[],
  opts: FetchImagesOptions,
): Promise<ImageInput[]> {
  const unique = [...new Map(requests.map((r) => [r.url, r])).values()];
  const byUrl = new Map<string, ImageInput>();
  const stop = new AbortController();
  const signal = AbortSignal.any([opts.signal, stop.signal]);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < unique.length) {
      const { field, url } = unique[next++];
      const { data } = await fetcher.fetch(url, {
        field,
        signal,
        accept: 'image',
        projectId: opts.projectId,
      });
      const size = await imageSize(data, field, url);
      byUrl.set(url, { field, url, data, ...size });
      done += 1;
      if (!signal.aborted) await opts.onFetched?.(done);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(FETCH_CONCURRENCY, unique.length) }, worker));
  } catch (err) {
    stop.abort(err);
    opts.signal.throwIfAborted();
    throw err;
  }
  return requests.map((r) => ({ ...byUrl.get(r.url)!, field: r.field }));
}

async function imageSize(
  data: Buffer,
  field: string,
  url: string,
): Promise<{ width: number; height: number }> {
  try {
    // IMAGE_MAX_PIXELS was checked by the fetcher from the header; sharp keeps its own bound.
    const meta = await sharp(data).metadata();
    if (!meta.width || !meta.height) throw new Error('no image size');
    // EXIF orientations 5–8 are stored sideways.
    const sideways = (meta.orientation ?? 1) >= 5;
    return sideways
      ? { width: meta.height, height: meta.width }
      : { width: meta.width, height: meta.height };
  } catch (err) {
    throw InputFetchError.undecodableImage(field, url, err);
  }
}

/** Decoded pixels of an input, `channels` per pixel, row-major. */
export interface DecodedImage {
  data: Buffer;
  width: number;
  height: number;
}

/** The image as RGB, scaled and centre-cropped to cover exactly `width`×`height`. */
export async function decodeCover(
  input: ImageInput,
  width: number,
  height: number,
): Promise<DecodedImage> {
  return decode(input, 3, (image) =>
    image
      .resize(width, height, { fit: 'cover', position: 'centre' })
      .flatten({ background: '#000000' }),
  );
}

/** The image as RGBA (transparency kept), scaled to `width`×`height`. */
export async function decodeRgba(
  input: ImageInput,
  width: number,
  height: number,
): Promise<DecodedImage> {
  return decode(input, 4, (image) => image.resize(width, height, { fit: 'fill' }).ensureAlpha());
}

async function decode(
  input: ImageInput,
  channels: 3 | 4,
  shape: (image: Sharp) => Sharp,
): Promise<DecodedImage> {
  try {
    const { data, info } = await shape(sharp(input.data).rotate())
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== channels) throw new Error(`decoded to ${info.channels} channels`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw InputFetchError.undecodableImage(input.field, input.url, err);
  }
}
