/**
 * A detector's head described in a small JSON file (or inferred from the model's inputs and outputs): what the
 * input wants (layout, size, value range, letterbox or stretch) and how to read the outputs — the Ultralytics
 * layout, the SSD layout, or an anchor head (MediaPipe-style anchors and box coding). `docs/detection.md` has the
 * BlazeFace example. Errors name the file and the field.
 */
import { readFileSync } from "node:fs";
import { DataError } from "../data/errors.js";
import type { ValueInfo } from "../onnx/ir.js";
import type { AnchorOptions, BoxCoding, ScoreCoding } from "./anchors.js";
import { DEFAULT_SSD_LAYOUT, type SsdLayout } from "./ssd.js";

export type HeadFormat = "ultralytics" | "ssd" | "anchors" | "centernet";

export interface InputSpec {
  /** The model's input name (default: its first input). */
  name?: string;
  layout: "nchw" | "nhwc";
  width: number;
  height: number;
  channels: 1 | 3;
  /** Pixel 0 maps to range[0], pixel 255 to range[1] (Ultralytics [0, 1], MediaPipe [-1, 1], raw [0, 255]). */
  range: [number, number];
  /** Letterbox (keep the aspect, pad grey: Ultralytics) or stretch to the input size (MediaPipe). */
  resize: "letterbox" | "stretch";
}

export interface DetectSpec {
  format: HeadFormat;
  input: InputSpec;
  /** Output names: predictions (Ultralytics, CenterNet), or scores and boxes (SSD: one each; anchors: joined in order). */
  outputs: { predictions?: string; scores: string[]; boxes: string[] };
  classNames: string[];
  scoreThreshold: number;
  iouThreshold: number;
  maxDetections: number;
  /** Merge overlapping boxes by their scores instead of dropping them (MediaPipe's weighted NMS). */
  weightedNms: boolean;
  ssd: SsdLayout;
  anchors?: Omit<AnchorOptions, "inputWidth" | "inputHeight">;
  boxCoding?: BoxCoding;
  scores: ScoreCoding;
  /** CenterNet (tiny-det): input pixels per output cell. */
  stride?: number;
}

type Json = Record<string, unknown>;

class Fields {
  constructor(
    readonly file: string,
    readonly at: string,
    readonly o: Json,
  ) {}
  fail(key: string, msg: string): never {
    throw new DataError(`${this.at}${key}: ${msg}`, { file: this.file });
  }
  num(key: string, def?: number, min = Number.NEGATIVE_INFINITY): number {
    const v = this.o[key] ?? def;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min)
      this.fail(
        key,
        `must be a number${min > Number.NEGATIVE_INFINITY ? ` ≥ ${min}` : ""}, got ${JSON.stringify(v)}`,
      );
    return v;
  }
  int(key: string, def?: number, min = 0): number {
    const v = this.num(key, def, min);
    if (!Number.isInteger(v)) this.fail(key, `must be a whole number, got ${v}`);
    return v;
  }
  bool(key: string, def: boolean): boolean {
    const v = this.o[key] ?? def;
    if (typeof v !== "boolean") this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  pick<T extends string>(key: string, choices: readonly T[], def?: T): T {
    const v = this.o[key] ?? def;
    if (!choices.includes(v as T))
      this.fail(key, `must be one of ${choices.join(", ")}, got ${JSON.stringify(v)}`);
    return v as T;
  }
  nums(key: string, def?: number[]): number[] {
    const v = this.o[key] ?? def;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "number" && Number.isFinite(x)))
      this.fail(key, `must be a list of numbers, got ${JSON.stringify(v)}`);
    return v as number[];
  }
  strings(key: string, def?: string[]): string[] {
    const raw = this.o[key] ?? def;
    const v = typeof raw === "string" ? [raw] : raw;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
      this.fail(key, `must be a name or a list of names, got ${JSON.stringify(raw)}`);
    return v as string[];
  }
  sub(key: string): Fields {
    const v = this.o[key] ?? {};
    if (typeof v !== "object" || Array.isArray(v) || v === null) this.fail(key, "must be an object");
    return new Fields(this.file, `${this.at}${key}.`, v as Json);
  }
}

function parseInput(f: Fields, base?: InputSpec): InputSpec {
  const range = f.nums("range", base?.range ?? [0, 1]);
  if (range.length !== 2 || range[0] === range[1]) f.fail("range", "must be two different numbers [lo, hi]");
  const channels = f.int("channels", base?.channels ?? 3, 1);
  if (channels !== 1 && channels !== 3) f.fail("channels", `must be 1 or 3, got ${channels}`);
  const name = f.o.name ?? base?.name;
  if (name !== undefined && typeof name !== "string") f.fail("name", "must be a string");
  return {
    name: name as string | undefined,
    layout: f.pick("layout", ["nchw", "nhwc"], base?.layout),
    width: f.int("width", base?.width, 1),
    height: f.int("height", base?.height, 1),
    channels,
    range: [range[0]!, range[1]!],
    resize: f.pick("resize", ["letterbox", "stretch"], base?.resize ?? "letterbox"),
  };
}

function parseAnchors(f: Fields): NonNullable<DetectSpec["anchors"]> {
  return {
    strides: f.nums("strides"),
    minScale: f.num("minScale", 0.1484375, 0),
    maxScale: f.num("maxScale", 0.75, 0),
    aspectRatios: f.nums("aspectRatios", [1]),
    interpolatedScaleAspectRatio: f.num("interpolatedScaleAspectRatio", 1),
    offsetX: f.num("offsetX", 0.5),
    offsetY: f.num("offsetY", 0.5),
    fixedAnchorSize: f.bool("fixedAnchorSize", true),
    reduceBoxesInLowestLayer: f.bool("reduceBoxesInLowestLayer", false),
  };
}

function parseBoxCoding(f: Fields, input: InputSpec): BoxCoding {
  const scale = f.nums("scale", [input.width, input.height, input.width, input.height]);
  if (scale.length !== 4 || scale.some((s) => s === 0))
    f.fail("scale", "must be four non-zero divisors [x, y, w, h]");
  const keypoints = f.int("keypoints", 0);
  const coords = f.int("coords", 4 + 2 * keypoints, 4);
  if (coords < 4 + 2 * keypoints)
    f.fail("coords", `${coords} values cannot hold a box and ${keypoints} keypoints`);
  return {
    coords,
    order: f.pick("order", ["xywh", "yxhw"], "xywh"),
    xScale: scale[0]!,
    yScale: scale[1]!,
    wScale: scale[2]!,
    hScale: scale[3]!,
    exponentialSize: f.bool("exponentialSize", false),
    keypoints,
  };
}

/**
 * A spec from parsed JSON. `base` (inferred from the model) fills what the file leaves out, so a file may say only
 * what cannot be inferred (the anchors, the value range).
 */
export function parseDetectSpec(json: unknown, file: string, base?: DetectSpec): DetectSpec {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new DataError("a detect spec must be a JSON object", { file });
  const f = new Fields(file, "", json as Json);
  const format = f.pick("format", ["ultralytics", "ssd", "anchors", "centernet"], base?.format);
  const input = parseInput(f.sub("input"), base?.input);
  const out = f.sub("outputs");
  const outputs = {
    predictions: typeof out.o.predictions === "string" ? out.o.predictions : base?.outputs.predictions,
    scores: out.strings("scores", base?.outputs.scores ?? []),
    boxes: out.strings("boxes", base?.outputs.boxes ?? []),
  };
  if ((format === "ssd" || format === "anchors") && (!outputs.scores.length || !outputs.boxes.length))
    out.fail("scores", `a ${format} head needs the names of its scores and boxes outputs`);
  if (format === "ssd" && (outputs.scores.length !== 1 || outputs.boxes.length !== 1))
    out.fail("scores", "an SSD head has one scores and one boxes output");
  const classNames = f.strings("classNames", base?.classNames);
  if (!classNames.length) f.fail("classNames", "must name at least one class");
  const s = f.sub("ssd");
  const sc = f.sub("scores");
  const spec: DetectSpec = {
    format,
    input,
    outputs,
    classNames,
    scoreThreshold: f.num("scoreThreshold", base?.scoreThreshold ?? 0.25, 0),
    iouThreshold: f.num("iouThreshold", base?.iouThreshold ?? 0.45, 0),
    maxDetections: f.int("maxDetections", base?.maxDetections ?? 300, 1),
    weightedNms: f.bool("weightedNms", base?.weightedNms ?? false),
    ssd: {
      boxFormat: s.pick(
        "boxFormat",
        ["xyxy", "yxyx", "cxcywh"],
        base?.ssd.boxFormat ?? DEFAULT_SSD_LAYOUT.boxFormat,
      ),
      normalized: s.bool("normalized", base?.ssd.normalized ?? false),
      background: s.o.background === undefined ? base?.ssd.background : s.int("background"),
      sigmoid: s.bool("sigmoid", base?.ssd.sigmoid ?? false),
    },
    scores: { sigmoid: sc.bool("sigmoid", format === "anchors"), clip: sc.num("clip", 0, 0) },
  };
  if (format === "centernet") spec.stride = f.int("stride", base?.stride, 1);
  if (format === "anchors") {
    spec.anchors = parseAnchors(f.sub("anchors"));
    spec.boxCoding = parseBoxCoding(f.sub("boxCoding"), input);
  }
  return spec;
}

/** A spec from a JSON file. */
export function readDetectSpec(file: string, base?: DetectSpec): DetectSpec {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new DataError(
      `cannot read the detect spec (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      {
        file,
      },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DataError(`not valid JSON (${(e as Error).message})`, { file });
  }
  return parseDetectSpec(json, file, base);
}

const fixed = (d: unknown): d is number => typeof d === "number" && d > 0;

/** The dataset's class names when they fit the head's class count, else the class indices. */
const namesFor = (classNames: readonly string[], nc: number): string[] =>
  classNames.length === nc ? [...classNames] : Array.from({ length: nc }, (_, i) => String(i));

function inferInput(v: ValueInfo | undefined): InputSpec | undefined {
  const s = v?.shape;
  if (!v || !s || s.length !== 4) return undefined;
  const [, a, b, c] = s;
  const at = (layout: InputSpec["layout"], channels: 1 | 3, height: number, width: number): InputSpec => ({
    name: v.name,
    layout,
    channels,
    height,
    width,
    range: [0, 1],
    resize: "letterbox",
  });
  if ((a === 1 || a === 3) && fixed(b) && fixed(c)) return at("nchw", a, b, c);
  if ((c === 1 || c === 3) && fixed(a) && fixed(b)) return at("nhwc", c, a, b);
  return undefined;
}

/**
 * What the model's inputs and outputs say: one [1, 4+nc, N] output is the Ultralytics layout; one
 * [1, nc+4, rows, cols] output is a CenterNet head (qat's tiny-det; stride = input height / rows); a [1, N, C] and a
 * [1, N, 4] output are the SSD layout (scores, boxes: corners in input pixels unless a spec says otherwise). Input
 * values are taken to span `range` (Ultralytics exports [0, 1]; qat's own models take the stored 0–255 pixels).
 * Undefined when the shapes do not say (an anchor head always needs a spec, since anchors are not in the model).
 */
export function inferDetectSpec(
  io: { inputs: readonly ValueInfo[]; outputs: readonly ValueInfo[] },
  classNames: readonly string[],
  range: [number, number] = [0, 1],
): DetectSpec | undefined {
  const inferred = inferInput(io.inputs[0]);
  if (!inferred) return undefined;
  const input = { ...inferred, range };
  const common = {
    input,
    classNames: [...classNames],
    scoreThreshold: 0.001,
    iouThreshold: 0.7,
    maxDetections: 300,
    weightedNms: false,
    ssd: DEFAULT_SSD_LAYOUT,
    scores: { sigmoid: false, clip: 0 },
  };
  const shapes = io.outputs.map((o) => o.shape ?? []);
  if (io.outputs.length === 1 && shapes[0]!.length === 3 && fixed(shapes[0]![1]) && shapes[0]![1] >= 5) {
    const nc = (shapes[0]![1] as number) - 4;
    const names = namesFor(classNames, nc);
    return {
      ...common,
      classNames: names,
      format: "ultralytics",
      outputs: { predictions: io.outputs[0]!.name, scores: [], boxes: [] },
    };
  }
  const s0 = shapes[0]!;
  if (io.outputs.length === 1 && s0.length === 4 && fixed(s0[1]) && s0[1] >= 5 && fixed(s0[2])) {
    const nc = s0[1] - 4;
    const names = namesFor(classNames, nc);
    return {
      ...common,
      scoreThreshold: 0.01,
      classNames: names,
      format: "centernet",
      stride: input.height / s0[2],
      outputs: { predictions: io.outputs[0]!.name, scores: [], boxes: [] },
    };
  }
  if (io.outputs.length === 2 && shapes.every((s) => s.length === 3)) {
    const boxIdx = shapes.findIndex((s) => s[2] === 4);
    const other = 1 - boxIdx;
    if (boxIdx >= 0 && shapes[other]![2] !== 4 && fixed(shapes[other]![2])) {
      const nc = shapes[other]![2] as number;
      const names = namesFor(classNames, nc);
      return {
        ...common,
        classNames: names,
        format: "ssd",
        outputs: { scores: [io.outputs[other]!.name], boxes: [io.outputs[boxIdx]!.name] },
      };
    }
  }
  return undefined;
}
