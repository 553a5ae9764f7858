import { Logger } from '@nestjs/common';
import { GpuService, HUMAN_FACE_BODY_MODEL } from '@app/gpu';
import { ANALYZE_CHARACTER_TASK, type AnalyzeCharacterTaskData } from '@app/tasks';
import { InputFetchError } from '../../inputs/input-fetch.error';
import { InputFetcher } from '../../inputs/input-fetcher';
import {
  bestFace,
  FaceAnalyzer,
  type BodyPose,
  type FaceFinding,
  type HumanFindings,
} from '../../media/faces/face.analyzer';
import { cosineSimilarity, embeddingDigest } from '../../media/faces/face.embedding';
import { fetchImages, type ImageInput } from '../../media/video/image.inputs';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';

// Progress milestones: fetches fill LOADED..FETCHED, the networks FETCHED..ANALYZED.
const LOADED = 0.05;
const FETCHED = 0.3;
const ANALYZED = 0.95;

/** Version of the JSON document's shape. */
export const ANALYSIS_SCHEMA = 'analyze_character/v1';

/** A face as the JSON document shows it: the embedding replaced by its digest (and values). */
export type ReportedFace = Omit<FaceFinding, 'embedding'> & {
  /** The face this image is compared by (see bestFace). */
  best: boolean;
  embedding: { dims: number; sha256: string; values?: number[] } | null;
};

/** How one image's best face compares with the reference faces. */
export interface ImageConsistency {
  /** Cosine similarity per reference, in reference order; null for a reference without a face. */
  similarities: Array<number | null>;
  max: number | null;
  mean: number | null;
  /** max ≥ match_threshold. */
  matches: boolean;
  /** Why there is nothing to compare, when there is not. */
  note?: string;
}

export interface AnalyzedImage {
  field: string;
  /** Origin and path only (a presigned query is not repeated). */
  url: string;
  width: number;
  height: number;
  faces: ReportedFace[];
  bodies: BodyPose[];
  consistency?: ImageConsistency | null;
}

/** The JSON document analyze_character stores. */
export interface CharacterAnalysis {
  schema: typeof ANALYSIS_SCHEMA;
  model: { name: string; version: string };
  backend: string;
  consistency: {
    metric: string;
    /** What the images are compared with. */
    reference: 'reference_images' | 'image_urls[0]';
    match_threshold: number;
  };
  images: AnalyzedImage[];
  references: AnalyzedImage[];
}

/**
 * Character consistency: faces (box, landmarks, age, gender, emotion, FaceRes embedding) and
 * MoveNet body pose of every image, and how close each image's face is to the reference faces
 * (cosine similarity of embeddings). The result is a JSON document; a summary goes in metadata.
 */
@TaskProcessorFor(ANALYZE_CHARACTER_TASK, { models: [HUMAN_FACE_BODY_MODEL] })
export class AnalyzeCharacterProcessor implements TaskProcessor<AnalyzeCharacterTaskData> {
  private readonly logger = new Logger(AnalyzeCharacterProcessor.name);

  constructor(
    private readonly gpu: GpuService,
    private readonly inputs: InputFetcher,
    private readonly faces: FaceAnalyzer,
  ) {}

  async process(task: RunningTask<AnalyzeCharacterTaskData>): Promise<TaskOutput> {
    const data = task.data;
    const refs = data.reference_images ?? [];
    const fields = { task_id: task.taskId, project_id: task.projectId };
    task.signal.throwIfAborted();
    const started = Date.now();
    await task.progress(0.01, 'loading_models');
    await this.gpu.init();
    await task.progress(LOADED, 'fetching_images');

    const requests = [
      ...data.image_urls.map((url, i) => ({ field: `task_data.image_urls[${i}]`, url })),
      ...refs.map((url, i) => ({ field: `task_data.reference_images[${i}]`, url })),
    ];
    const unique = new Set(requests.map((r) => r.url)).size;
    const fetched = await fetchImages(this.inputs, requests, {
      projectId: task.projectId,
      signal: task.signal,
      onFetched: (done) =>
        task.progress(LOADED + ((FETCHED - LOADED) * done) / unique, 'fetching_images'),
    });
    task.signal.throwIfAborted();

    await task.progress(FETCHED, 'analyzing_faces');
    const { found, model } = await this.faces.use(async (run, model) => {
      // The same URL twice (an image also given as a reference) is analyzed once.
      const byUrl = new Map<string, HumanFindings>();
      const found: HumanFindings[] = [];
      for (const input of fetched) {
        task.signal.throwIfAborted();
        let result = byUrl.get(input.url);
        if (!result) {
          result = await run(await FaceAnalyzer.decode(input.data, input.field, input.url));
          byUrl.set(input.url, result);
          await task.progress(
            FETCHED + ((ANALYZED - FETCHED) * byUrl.size) / unique,
            'analyzing_faces',
          );
          // Let timers and I/O (lock renewal, cancel messages) run between images.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        found.push(result);
      }
      return { found, model };
    });
    task.signal.throwIfAborted();

    const images = fetched.slice(0, data.image_urls.length);
    const references = fetched.slice(data.image_urls.length);
    const imageFindings = found.slice(0, images.length);
    const referenceFindings = found.slice(images.length);
    const useReferences = references.length > 0;
    const against = useReferences ? referenceFindings : [imageFindings[0]];
    const referenceFaces = against.map((f) => bestFace(f.faces));
    const threshold = data.match_threshold;

    const report = (input: ImageInput, f: HumanFindings): AnalyzedImage => {
      const best = bestFace(f.faces);
      return {
        field: input.field,
        url: InputFetchError.redactUrl(input.url),
        width: f.width,
        height: f.height,
        faces: f.faces.map((face) => reportFace(face, face === best, data.include_embeddings)),
        bodies: f.bodies,
      };
    };
    const analyzedImages = images.map((input, i) => {
      const image = report(input, imageFindings[i]);
      image.consistency =
        !useReferences && i === 0
          ? null
          : consistencyOf(bestFace(imageFindings[i].faces), referenceFaces, threshold);
      return image;
    });
    const document: CharacterAnalysis = {
      schema: ANALYSIS_SCHEMA,
      model,
      backend: this.gpu.backendName,
      consistency: {
        metric:
          "cosine similarity of FaceRes 1024-d embeddings, the image's best face (largest) " +
          "against each reference's best face",
        reference: useReferences ? 'reference_images' : 'image_urls[0]',
        match_threshold: threshold,
      },
      images: analyzedImages,
      references: references.map((input, i) => report(input, referenceFindings[i])),
    };
    const body = Buffer.from(JSON.stringify(document, null, 2));
    await task.progress(ANALYZED, 'analyzing_faces');

    const elapsed = Date.now() - started;
    const facesPerImage = imageFindings.map((f) => f.faces.length);
    const consistencyPerImage = analyzedImages.map((im) => im.consistency?.max ?? null);
    this.logger.log(
      fields,
      `${images.length} image(s), ${references.length} reference(s) in ${elapsed} ms on ` +
        `${this.gpu.backendName} (${model.name}@${model.version}); faces ${facesPerImage.join(',')}; ` +
        `consistency ${consistencyPerImage.map((c) => (c === null ? '-' : c.toFixed(3))).join(',')}`,
    );
    return {
      media: { kind: 'buffer', data: body, extension: 'json', contentType: 'application/json' },
      metadata: {
        format: 'JSON',
        schema: ANALYSIS_SCHEMA,
        images: images.length,
        references: references.length,
        faces_per_image: facesPerImage,
        bodies_per_image: imageFindings.map((f) => f.bodies.length),
        consistency_reference: document.consistency.reference,
        consistency_per_image: consistencyPerImage,
        matches_per_image: analyzedImages.map((im) => im.consistency?.matches ?? null),
        match_threshold: threshold,
        backend: this.gpu.backendName,
        model: model.name,
        model_version: model.version,
        analysis_ms: elapsed,
      },
    };
  }
}

function reportFace(face: FaceFinding, best: boolean, includeValues: boolean): ReportedFace {
  const { embedding, ...rest } = face;
  return {
    ...rest,
    best,
    embedding:
      embedding.length === 0
        ? null
        : {
            dims: embedding.length,
            sha256: embeddingDigest(embedding),
            ...(includeValues ? { values: embedding.map((v) => Number(v.toFixed(6))) } : {}),
          },
  };
}

/** The image's best face against each reference face (undefined: that reference has none). */
export function consistencyOf(
  face: FaceFinding | undefined,
  references: ReadonlyArray<FaceFinding | undefined>,
  threshold: number,
): ImageConsistency {
  if (!face) {
    return {
      similarities: references.map(() => null),
      max: null,
      mean: null,
      matches: false,
      note: 'no face found in this image',
    };
  }
  const similarities = references.map((r) =>
    r ? Number(cosineSimilarity(face.embedding, r.embedding).toFixed(4)) : null,
  );
  const scores = similarities.filter((s): s is number => s !== null);
  if (scores.length === 0) {
    return {
      similarities,
      max: null,
      mean: null,
      matches: false,
      note: 'no face found in any reference image',
    };
  }
  const max = Math.max(...scores);
  const mean = Number((scores.reduce((s, v) => s + v, 0) / scores.length).toFixed(4));
  return { similarities, max, mean, matches: max >= threshold };
}
