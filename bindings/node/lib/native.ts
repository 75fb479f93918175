// The native addon (`uml.node`, built from ../src by scripts/build-addon.js) and the shape of
// what it exports. Only this package uses it; the public API is in index.ts.

import * as path from 'node:path'

/** A core cancel token (`src/cancel.rs`). */
export interface NativeCancelToken {
  cancel(): void
  readonly cancelled: boolean
}

/** A series pulled one promise at a time: `null` marks its end (`src/task.rs`). */
export interface NativeSeries<T> {
  next(): Promise<T | null>
}

export interface NativeLoading extends NativeSeries<{ stage: string; fraction: number }> {
  model(): NativeModel
}

export interface NativeStream extends NativeSeries<string> {
  completion(): unknown
  cancel(): void
  readonly ended: boolean
}

export interface NativeModel {
  close(): Promise<void>
  readonly closed: boolean
  readonly path: string
  readonly embeddingSize: number
  info(): unknown
  generate(prompt: string, paramsJson: string, cancel: NativeCancelToken): Promise<unknown>
  chat(messagesJson: string, paramsJson: string, cancel: NativeCancelToken): Promise<unknown>
  stream(prompt: string, paramsJson: string, cancel: NativeCancelToken): NativeStream
  chatStream(messagesJson: string, paramsJson: string, cancel: NativeCancelToken): NativeStream
  renderChat(messagesJson: string, addGenerationPrompt: boolean, cancel: NativeCancelToken): Promise<string>
  embed(texts: string[], cancel: NativeCancelToken): Promise<Float32Array[]>
  tokenize(text: string, addSpecial: boolean): Promise<number[]>
  detokenize(tokens: number[]): Promise<string>
  bench(optionsJson: string): Promise<unknown>
  session(messagesJson: string): NativeChatSession
}

/** A chat session (`src/session.rs`). */
export interface NativeChatSession {
  send(role: string, content: string, paramsJson: string, cancel: NativeCancelToken): Promise<unknown>
  sendStream(role: string, content: string, paramsJson: string, cancel: NativeCancelToken): NativeStream
  readonly messages: unknown
  reset(messagesJson: string): void
  close(): Promise<void>
  readonly closed: boolean
}

/** A model manager (`src/manager.rs`). */
export interface NativePulling extends NativeSeries<{ file: string; bytes: number; total: number }> {
  report(): unknown
}

export interface NativeManager {
  register(id: string, path: string, loadOptionsJson: string): Promise<void>
  registerRemote(id: string, endpointJson: string, loadOptionsJson: string): Promise<void>
  setFallback(name: string, endpointJson: string): Promise<void>
  alias(alias: string, id: string): void
  scan(loadOptionsJson: string): Promise<string[]>
  startPull(spec: string, pullOptionsJson: string, loadOptionsJson: string, cancel: NativeCancelToken): NativePulling
  get(name: string): Promise<NativeModel>
  swap(name: string, path: string, loadOptionsJson: string): Promise<void>
  unload(name: string): number
  remove(name: string): number
  list(): unknown
  readonly budgetBytes: number
  readonly usedBytes: number
  readonly keepAliveMs: number | null
  close(): Promise<void>
  readonly closed: boolean
}

export interface Native {
  version(): string
  errorKinds(): Array<[number, string]>
  inspect(path: string): Promise<unknown>
  estimate(path: string, optionsJson: string): Promise<unknown>
  hardware(): unknown
  shutdown(): void
  openmpSpin(): [string, string]
  startLoad(path: string, optionsJson: string, cancel: NativeCancelToken): NativeLoading
  loadRemote(endpointJson: string, optionsJson: string): Promise<NativeModel>
  CancelToken: new () => NativeCancelToken
  Manager: new (optionsJson: string) => NativeManager
}

/** What GOMP_SPINCOUNT llama.cpp's OpenMP runs with (core's `hardware::OPENMP_SPIN`; a test
 * checks the two agree). libgomp reads it once, when the addon loads it. */
export const OPENMP_SPIN: [string, string] = ['GOMP_SPINCOUNT', '1000']

function load(): Native {
  // Without a spin limit, a busy machine makes llama.cpp's OpenMP threads spin for seconds at
  // every barrier; the user's own OpenMP settings win.
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
    process.env[OPENMP_SPIN[0]] = OPENMP_SPIN[1]
  }
  const file = process.env.UML_NODE_ADDON ?? path.join(__dirname, '..', 'uml.node')
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as Native
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e)
    throw new Error(
      `uml: cannot load the native addon ${file}: ${why}. ` +
        'Build it with `npm rebuild uml` (needs the Rust toolchain), or set UML_NODE_ADDON to its path.',
    )
  }
}

export const native: Native = load()
