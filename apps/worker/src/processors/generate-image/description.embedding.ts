export type Rgb = readonly [number, number, number];

export const EMBEDDING_DIMS = 32;

/**
 * A deterministic text embedding: words, word pairs and character trigrams hashed (with a sign)
 * into a fixed-size vector, L2-normalised. No vocabulary or model file, and related descriptions
 * ("noir detective" / "detective, noir") land close together.
 */
export function embedDescription(text: string, dims = EMBEDDING_DIMS): Float32Array {
  const out = new Float32Array(dims);
  const words = tokenize(text);
  const add = (feature: string, weight: number) => {
    const h = fnv1a(feature);
    out[h % dims] += h & 0x80000000 ? -weight : weight;
  };
  words.forEach((word, i) => {
    add(`w:${word}`, 1);
    if (i > 0) add(`b:${words[i - 1]}_${word}`, 0.7);
    const padded = `<${word}>`;
    const trigrams = Math.max(1, padded.length - 2);
    for (let j = 0; j + 3 <= padded.length; j++)
      add(`c:${padded.slice(j, j + 3)}`, 0.5 / Math.sqrt(trigrams));
  });
  let norm = 0;
  for (const v of out) norm += v * v;
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < dims; i++) out[i] /= norm;
  return out;
}

/** What the description says outright about the character; the figure and colours follow it. */
export interface DescriptionTraits {
  /** Colours named in the description, in order (the first tints the outfit). */
  colours: Rgb[];
  hair?: Rgb;
  hat: boolean;
  longCoat: boolean;
}

const COLOUR_WORDS: Record<string, Rgb> = {
  red: [0.78, 0.12, 0.12],
  crimson: [0.62, 0.05, 0.15],
  scarlet: [0.85, 0.15, 0.08],
  orange: [0.95, 0.5, 0.1],
  yellow: [0.95, 0.85, 0.2],
  gold: [0.85, 0.65, 0.2],
  golden: [0.85, 0.65, 0.2],
  green: [0.15, 0.55, 0.2],
  emerald: [0.05, 0.55, 0.35],
  olive: [0.45, 0.45, 0.15],
  teal: [0.05, 0.5, 0.5],
  cyan: [0.1, 0.8, 0.85],
  blue: [0.15, 0.3, 0.8],
  navy: [0.08, 0.12, 0.35],
  purple: [0.45, 0.18, 0.6],
  violet: [0.55, 0.3, 0.8],
  magenta: [0.85, 0.15, 0.65],
  pink: [0.95, 0.55, 0.7],
  brown: [0.42, 0.27, 0.15],
  tan: [0.76, 0.62, 0.42],
  beige: [0.85, 0.78, 0.62],
  black: [0.06, 0.06, 0.07],
  white: [0.94, 0.94, 0.92],
  grey: [0.5, 0.5, 0.52],
  gray: [0.5, 0.5, 0.52],
  silver: [0.75, 0.76, 0.8],
};

const HAIR_WORDS: Record<string, Rgb> = {
  blond: [0.9, 0.78, 0.45],
  blonde: [0.9, 0.78, 0.45],
  redhead: [0.65, 0.22, 0.08],
  ginger: [0.72, 0.3, 0.1],
  brunette: [0.3, 0.18, 0.1],
};

const HAT_WORDS = new Set([
  'hat',
  'fedora',
  'cap',
  'helmet',
  'crown',
  'beret',
  'bowler',
  'stetson',
  'tophat',
]);
const COAT_WORDS = new Set([
  'coat',
  'trenchcoat',
  'overcoat',
  'trench',
  'robe',
  'robes',
  'cloak',
  'gown',
  'dress',
  'cape',
  'kimono',
  'duster',
]);

export function describeTraits(text: string): DescriptionTraits {
  const words = tokenize(text);
  const colours: Rgb[] = [];
  let hair: Rgb | undefined;
  words.forEach((word, i) => {
    const next = words[i + 1];
    const colour = COLOUR_WORDS[word];
    // "black hair" / "silver-haired" colour the hair rather than the outfit.
    if (colour && (next === 'hair' || next === 'haired')) hair ??= colour;
    else if (colour) colours.push(colour);
    hair ??= HAIR_WORDS[word];
  });
  return {
    colours,
    hair,
    hat: words.some((w) => HAT_WORDS.has(w)),
    longCoat: words.some((w) => COAT_WORDS.has(w)),
  };
}

function tokenize(text: string): string[] {
  return (
    text
      .toLowerCase()
      .normalize('NFKC')
      .match(/[\p{L}\p{N}]+/gu) ?? []
  );
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
