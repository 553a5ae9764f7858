import sharp from 'sharp';
import type { ImageFormat } from '@app/tasks';
import type { TaskMedia } from '../../runtime/task-processor';

export interface ImageEncoding {
  readonly extension: 'jpg' | 'png' | 'webp';
  readonly contentType: string;
  /** How result metadata names the format. */
  readonly label: string;
}

export const IMAGE_ENCODINGS: Record<ImageFormat, ImageEncoding> = {
  jpeg: { extension: 'jpg', contentType: 'image/jpeg', label: 'JPEG' },
  png: { extension: 'png', contentType: 'image/png', label: 'PNG' },
  webp: { extension: 'webp', contentType: 'image/webp', label: 'WEBP' },
};

/** Encodes raw 8-bit pixels (3 channels, or 4 with alpha for png/webp) as generate_image does. */
export function encodeImage(
  pixels: Buffer,
  width: number,
  height: number,
  channels: 3 | 4,
  format: ImageFormat,
): Promise<Buffer> {
  // Output sizes are bounded by IMAGE_MAX_PIXELS, checked before any of this: not sharp's limit.
  const image = sharp(pixels, { raw: { width, height, channels }, limitInputPixels: false });
  switch (format) {
    case 'jpeg':
      // mozjpeg trades several times the encode time for ~10% size: not worth it here.
      return image.jpeg({ quality: 90, mozjpeg: false }).toBuffer();
    case 'png':
      return image.png({ compressionLevel: 6 }).toBuffer();
    case 'webp':
      return image.webp({ quality: 90 }).toBuffer();
  }
}

/** An encoded image as a processor's output media. */
export function imageMedia(
  data: Buffer,
  encoding: { readonly extension: string; readonly contentType: string },
): TaskMedia {
  return { kind: 'buffer', data, extension: encoding.extension, contentType: encoding.contentType };
}

/** The metadata every image output starts with: `resolution`, `format`, `width`, `height`. */
export function imageMetadata(
  encoding: Pick<ImageEncoding, 'label'>,
  width: number,
  height: number,
): { resolution: string; format: string; width: number; height: number } {
  return { resolution: `${width}x${height}`, format: encoding.label, width, height };
}
