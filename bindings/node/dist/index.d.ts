export { AbortError, BackendError, BufferTooSmallError, BusyError, ContextOverflowError, ERRORS_BY_CODE, ErrorCode, InternalError, InvalidArgumentError, InvalidModelError, IoError, ModelClosedError, ModelNotFoundError, OutOfMemoryError, UmlError, UnsupportedError, UnsupportedFormatError, } from './errors';
/** How a load or a generation can be stopped. */
export interface Abortable {
    /** Aborting cancels the work (within one decode step) and rejects with an `AbortError`. */
    signal?: AbortSignal;
}
/** Load options (core's `LoadOptions`; snake_case keys are accepted too). */
export interface LoadOptions extends Abortable {
    /** Context length in tokens (default: the model's, capped by memory). */
    nCtx?: number;
    /** Threads for generation (default: the physical cores). */
    nThreads?: number;
    /** Threads for prompt processing. */
    nThreadsBatch?: number;
    nBatch?: number;
    nUbatch?: number;
    /** Layers to offload to a GPU, or 'auto' for as many as fit. */
    gpuLayers?: number | 'auto';
    useMmap?: boolean;
    useMlock?: boolean;
    kvCacheType?: 'f32' | 'f16' | 'q8_0' | 'q4_0';
    seed?: number;
    /** Load for `embed` (pooled sentence vectors). */
    embeddings?: boolean;
    normalizeEmbeddings?: boolean;
    /** A Jinja chat template that replaces the model's own. */
    chatTemplate?: string;
    /** 'auto' (default), 'llamacpp' or 'candle'. */
    backend?: 'auto' | 'llamacpp' | 'candle';
    flashAttention?: boolean;
    /** Weight type for the candle backend: 'f32', 'f16' or 'bf16'. */
    dtype?: 'f32' | 'f16' | 'bf16';
    /** Let text in chat messages that spells a control token become that token. */
    controlTokensInMessages?: boolean;
    /** Most generations running at once on this model (with llama.cpp, the slots of one shared
     * context, decoded together, or private contexts for a load that drafts; default up to 4);
     * others wait in line, in arrival order. */
    maxParallel?: number;
    /** Most callers waiting for a free slot; one more rejects with `BusyError` (default 512). */
    maxQueued?: number;
    /** LoRA adapters to load (GGUF adapter files, as llama.cpp's convert_lora_to_gguf.py writes
     * them, or Hugging Face PEFT adapter folders, converted as they load; llama.cpp only), each on at its `scale` for generations that do not choose;
     * several at a nonzero scale run together (merged into one adapter at load, as llama.cpp's
     * repeated `--lora-scaled` applies them). One made for another architecture or model rejects with
     * `InvalidArgumentError` naming the tensor and shapes. */
    lora?: LoraAdapter[];
    /** A small model of the same vocabulary that drafts tokens for this one to verify in one
     * decode (speculative decoding: faster, the same greedy text); rejects with
     * `InvalidArgumentError` when its vocabulary differs. llama.cpp only. */
    draftModel?: string;
    /** Draft with the model's own multi-token-prediction heads (speculative decoding without a
     * second model: faster, the same text). Qwen3.5, GLM-4.5 and DeepSeek-V3 GGUFs carry them;
     * `inspect(path).mtpLayers` says how many. A model without them rejects with
     * `InvalidArgumentError`. llama.cpp only; not with `draftModel`. */
    mtp?: boolean;
    /** Called as the load goes on; return false to cancel it. */
    onProgress?: (stage: 'inspect' | 'weights' | 'ready', fraction: number) => boolean | void;
}
/** One LoRA adapter of `LoadOptions.lora`. */
export interface LoraAdapter {
    /** The adapter's GGUF file. */
    path: string;
    /** Its scale for generations that do not choose (default 1; 0: loaded but off). */
    scale?: number;
    /** The name generations choose it by (default: the file name without `.gguf`). */
    name?: string;
}
/** One adapter of `GenerateOptions.lora`. */
export interface LoraScale {
    name: string;
    /** Default 1 (as trained); 0 is the base model. */
    scale?: number;
}
/** Generation options (core's `GenerateParams`; snake_case keys are accepted too). */
export interface GenerateOptions extends Abortable {
    maxTokens?: number;
    /** 0 is greedy. */
    temperature?: number;
    topK?: number;
    topP?: number;
    minP?: number;
    repeatPenalty?: number;
    repeatLastN?: number;
    frequencyPenalty?: number;
    presencePenalty?: number;
    seed?: number;
    /** Strings that end the generation (not included in the text). */
    stop?: string[];
    /** Token id → bias added to its logit. */
    logitBias?: Record<number, number>;
    /** A GBNF grammar the output must follow. */
    grammar?: string;
    /** A JSON schema the output must follow. */
    jsonSchema?: object;
    /** Run alone in a context of its own, never batched with other generations: the same
     * logits bit for bit as a lone caller gets (default false). */
    deterministic?: boolean;
    /** When the context is full, drop the older half after the first token and go on instead
     * of stopping with 'length' (default false; refused by models that cannot shift). */
    contextShift?: boolean;
    /** The LoRA adapters this generation runs with, by name, each with its scale; those not
     * listed are off (`[]`: the base model). Omitted: the scales the model was loaded with.
     * Several may be on only at the scales they were loaded with (else `UnsupportedError`). */
    lora?: LoraScale[];
    /** With a draft model: the most tokens drafted per step (default 16; 0: no drafting). */
    draftMax?: number;
    /** With a draft model: drafts shorter than this are not verified (default 0). */
    draftMin?: number;
    /** With a draft model: drafting stops at a token the draft gives less probability
     * (default 0). */
    draftPMin?: number;
    /** With a draft model: drafting stops at a near-tie, a token whose logit leads the draft's
     * runner-up by less than this (default 0.25; 0: draft through ties). The model breaks such
     * ties its own way more often than not, and the drafts after a rejected one are wasted. */
    draftMarginMin?: number;
}
/** Options of a chat session's turn: generation options, plus the role of the message sent. */
export interface SendOptions extends GenerateOptions {
    /** The role of the message sent (default 'user'). */
    role?: string;
}
export interface Usage {
    promptTokens: number;
    /** Prompt tokens kept from an earlier generation's context instead of evaluated again. */
    cachedPromptTokens: number;
    completionTokens: number;
    promptMs: number;
    generationMs: number;
    promptTokensPerSecond: number;
    generationTokensPerSecond: number;
    /** Speculative decoding: tokens the draft model proposed (0 without one). */
    draftedTokens: number;
    /** Of those, the ones the model kept (each saved a decode step). */
    acceptedTokens: number;
}
export interface Completion {
    text: string;
    finishReason: 'stop' | 'length' | 'cancelled';
    usage: Usage;
}
/** An OpenAI-style chat message. */
export interface ChatMessage {
    role: 'system' | 'user' | 'assistant' | 'tool' | string;
    content: string | null;
    [key: string]: unknown;
}
/** What a model file or folder is (headers only). */
/** Which blocks of a model keep a recurrent state (`ModelInfo.recurrent`). */
export interface RecurrentLayout {
    recurrent: boolean[];
    attention: boolean[];
    stateElements: number;
    headBlocks: number;
    /** Whether llama.cpp keeps state snapshots to roll a rejected draft back to. */
    rollsBack: boolean;
}
export interface ModelInfo {
    path: string;
    format: string;
    architecture: string | null;
    name: string | null;
    parameterCount: number;
    quantization: string | null;
    tensorTypes: Record<string, number>;
    tensorCount: number;
    contextLength: number | null;
    blockCount: number | null;
    embeddingLength: number | null;
    /** Multi-token-prediction blocks the model carries (0: none); what the `mtp` load option drafts with. */
    mtpLayers: number;
    /** For a model with a recurrent state (Mamba, RWKV, hybrids such as Qwen3.5 and LFM2; null
     * for a transformer): per block whether it keeps a state (`recurrent`) and whether it has a
     * KV cache (`attention`), the f32 elements of one block's state per sequence
     * (`stateElements`), the prediction-head blocks whose cache the `mtp` heads' context holds
     * (`headBlocks`), and whether llama.cpp can roll the state back for drafting (`rollsBack`).
     * The memory estimate counts these. */
    recurrent: RecurrentLayout | null;
    headCount: number | null;
    headCountKv: number | null;
    vocabSize: number | null;
    chatTemplate: string | null;
    bosToken: string | null;
    eosToken: string | null;
    fileSize: number;
    files: string[];
    metadata: Record<string, unknown>;
    [key: string]: unknown;
}
/** The memory a load would take (bytes), the backend it is for, and whether it fits now. */
export interface Estimate {
    nCtx: number;
    gpuLayers: number;
    weightsBytes: number;
    kvCacheBytes: number;
    computeBytes: number;
    /** Contexts each generation has of its own (1 with `draftModel`, 2 with `mtp`; 0: they
     * share the slots' context); `computeBytes` counts a buffer for each, in every slot. */
    privateContexts: number;
    overheadBytes: number;
    /** The LoRA adapters loaded with the model (load option `lora`), merged copy included. */
    adaptersBytes: number;
    hostBytes: number;
    deviceBytes: number;
    totalBytes: number;
    backend: string;
    /** The draft model's memory (load option `draftModel`), loaded beside the model; else null. */
    draft: Estimate | null;
    /** Host memory the load needs: the model's and its draft's. */
    loadHostBytes: number;
    /** GPU memory the load needs: the model's and its draft's. */
    loadDeviceBytes: number;
    /** Whether `loadHostBytes` fit in the memory available now (and `loadDeviceBytes` on the GPUs). */
    fits: boolean;
    availableMemoryBytes: number;
    [key: string]: unknown;
}
export interface Hardware {
    cpuModel: string;
    physicalCores: number;
    logicalCores: number;
    totalMemoryBytes: number;
    availableMemoryBytes: number;
    /** llama.cpp's CPU kernels: "native", or the variant a portable build loaded for this CPU
     * ("haswell", "skylakex", ...); null without llama.cpp. */
    cpuKernels: string | null;
    [key: string]: unknown;
}
/** How a loaded model runs: `{ backend, skippedBackends, plan, memory, model }`. */
export interface LoadedInfo {
    backend: string;
    skippedBackends: Array<{
        backend: string;
        reason: string;
    }>;
    plan: Record<string, unknown>;
    memory: Record<string, unknown>;
    model: ModelInfo;
}
/** The version of uml. */
export declare const version: string;
/** What the file or folder at `path` is, from its headers (no weights are read). */
export declare function inspect(path: string): Promise<ModelInfo>;
/** The memory loading `path` with `options` would take, and whether it fits now. */
export declare function estimate(path: string, options?: LoadOptions): Promise<Estimate>;
/** The CPU, memory and GPUs uml sees. */
export declare function hardware(): Hardware;
/** Text pieces of a generation as they come: `for await (const piece of stream)`. Breaking
 * out of the loop cancels the generation; `completion` holds the result once it has ended. */
export declare class TextStream implements AsyncIterableIterator<string> {
    #private;
    [Symbol.asyncIterator](): TextStream;
    /** The next piece; done once the generation has ended. Calls made before the previous one
     * settled queue up behind it. */
    next(): Promise<IteratorResult<string, undefined>>;
    /** Stop the generation (what `break` calls) and wait for it to end. */
    return(): Promise<IteratorResult<string, undefined>>;
    /** The result (text, finishReason, usage) once the stream has ended well, else null. */
    get completion(): Completion | null;
}
declare const asyncDispose: typeof Symbol.asyncDispose;
/** A loaded model. Any number of calls may run at once; `close()` (or the end of an
 * `await using` block) cancels them and frees the memory. */
export declare class Model implements AsyncDisposable {
    #private;
    /** The path it was loaded from. */
    get path(): string;
    get closed(): boolean;
    /** How it runs: backend, skipped backends and why, the load plan, memory, the model's info. */
    get info(): LoadedInfo;
    /** The width of its embedding vectors. */
    get embeddingSize(): number;
    /** Generate a continuation of `prompt`. */
    generate(prompt: string, options?: GenerateOptions): Promise<Completion>;
    /** Generate, as an async iterator of text pieces. */
    stream(prompt: string, options?: GenerateOptions): TextStream;
    /** Reply to `messages` with the model's own chat template. */
    chat(messages: ChatMessage[], options?: GenerateOptions): Promise<Completion>;
    /** `chat`, as an async iterator of text pieces. */
    chatStream(messages: ChatMessage[], options?: GenerateOptions): TextStream;
    /** A conversation with this model, starting from `messages` (a system prompt, earlier
     * turns, or none): each `send` adds a message and the reply, and the model keeps the
     * conversation's place in its cache, so a turn evaluates only the tokens it adds. Closing
     * the model ends its sessions (their turns reject with `ModelClosedError`). */
    session(messages?: ChatMessage[]): ChatSession;
    /** The prompt `chat` would generate from. */
    renderChat(messages: ChatMessage[], options?: Abortable & {
        addGenerationPrompt?: boolean;
    }): Promise<string>;
    /** One vector per text (a model loaded with `embeddings: true`). */
    embed(texts: string[], options?: Abortable): Promise<Float32Array[]>;
    /** Token ids of `text`; `addSpecial` (default true) adds BOS etc. as the model wants. */
    tokenize(text: string, options?: {
        addSpecial?: boolean;
    }): Promise<number[]>;
    /** The text of `tokens`. */
    detokenize(tokens: number[]): Promise<string>;
    /** Engine throughput, as llama-bench measures it (`{ nPrompt, nGen, repetitions }`). */
    bench(options?: Record<string, unknown>): Promise<unknown>;
    /** Cancel running calls, wait for them, and free the model. Idempotent. A model from
     * `Manager.get`: this handle lets go of it, and the manager keeps it loaded (now idle). */
    close(): Promise<void>;
    /** `await using model = await Loader.load(...)` closes it at the end of the block. */
    [asyncDispose](): Promise<void>;
}
/** A conversation with a model (`model.session(messages)`): it keeps its history, and its
 * place in the model's cache, between turns. One turn runs at a time: a `send` while another
 * runs rejects with `BusyError`. `close()` (or the end of an `await using` block) cancels a
 * running turn and releases what the model kept for the conversation. */
export declare class ChatSession implements AsyncDisposable {
    #private;
    /** One turn: add `content` as a message (role `options.role`, default 'user'), generate the
     * assistant's reply over the whole conversation with the model's chat template, and add the
     * reply; resolves with the completion, as `Model.chat` does. A turn that fails, or is
     * aborted before any text, leaves the history as it was. */
    send(content: string, options?: SendOptions): Promise<Completion>;
    /** `send`, as an async iterator of text pieces; the reply joins the history when it ends. */
    sendStream(content: string, options?: SendOptions): TextStream;
    /** The conversation so far: the starting messages, then each finished turn's message and
     * reply (a running turn's appear when it ends). */
    get messages(): ChatMessage[];
    /** Start over from `messages` (default none); the model's cache keeps whatever prefix
     * still matches. Throws `BusyError` while a turn runs. */
    reset(messages?: ChatMessage[]): void;
    /** Whether `close()` has been called. */
    get closed(): boolean;
    /** Cancel a running turn, wait for it, and release what the model kept for the
     * conversation. Idempotent; later calls throw `InvalidArgumentError`. */
    close(): Promise<void>;
    /** `await using session = model.session(...)` closes it at the end of the block. */
    [asyncDispose](): Promise<void>;
}
/** How a `Manager` runs. */
export interface ManagerOptions {
    /** The most the loaded models' memory estimates may take together, in bytes (default, or
     * null: 80% of the RAM available when the manager starts). */
    memoryBudgetBytes?: number | null;
    /** Unload a model once it has been idle this long (default, or null: keep it until it is
     * evicted). */
    keepAliveMs?: number | null;
    /** The only folders models load from (paths are resolved, `..` and symlinks followed,
     * before the check), and what `scan` searches. Default, or empty: any path. */
    folders?: string[];
}
/** A model served by an OpenAI-compatible endpoint (vLLM, llama-server, Ollama, another
 * `uml serve`). */
export interface RemoteEndpoint {
    /** The API's base URL, up to and including `/v1` (`http://10.0.0.5:8080/v1`). */
    url: string;
    /** The name the endpoint knows the model by. */
    model: string;
    /** Sent as `Authorization: Bearer <key>` when set. */
    apiKey?: string | null;
}
/** Load options for models a `Manager` loads: `LoadOptions` without `signal` and
 * `onProgress` (a manager loads on demand, for whoever asks first). */
export type ManagedLoadOptions = Omit<LoadOptions, 'signal' | 'onProgress'>;
/** One registered model, as `Manager.list()` reports it. */
export interface ManagedModel {
    id: string;
    aliases: string[];
    /** The resolved path. */
    path: string;
    /** 'idle': loaded, held by nobody but the manager (it may be evicted); 'in_use': held by a
     * `Model` from `get` or a running call (never evicted for another). */
    state: 'unloaded' | 'loading' | 'idle' | 'in_use';
    /** The backend running it; null while not loaded. */
    backend: string | null;
    /** What the budget counts for it while loaded (bytes), else 0. */
    memoryBytes: number;
    /** Milliseconds since it was last handed out; null: never. */
    idleMs: number | null;
    /** Its calls running and waiting. */
    activity: {
        running: number;
        queued: number;
    };
}
/** How `Manager.pull` fetches, besides the load options of the model it registers. */
export interface PullOptions extends ManagedLoadOptions {
    /** A branch, tag or commit (default "main"). */
    revision?: string;
    /** Exact repo file paths to fetch instead of the chosen ones. */
    files?: string[];
    /** The hub's base URL (default: `HF_ENDPOINT`, else https://huggingface.co). */
    endpoint?: string;
    /** A hub access token (default: `HF_TOKEN`, else the token file `huggingface-cli login` writes). */
    token?: string;
    /** Called about every MiB with the repo file being fetched, the bytes of all chosen files on
     * disk so far and their total; returning false cancels the pull (AbortError). */
    onProgress?: (file: string, bytes: number, total: number) => boolean | void;
    signal?: AbortSignal;
}
/** What `Manager.pull` left on disk. */
export interface Pulled {
    /** The id it is registered as (what `get` takes). */
    id: string;
    repo: string;
    /** The commit its files came from. */
    commit: string;
    /** The model: the GGUF file (the first part of a split one) or the Hugging Face folder. */
    path: string;
    files: string[];
    /** Bytes fetched over the network by this pull, and bytes found already there. */
    downloadedBytes: number;
    reusedBytes: number;
}
/** Several models by id (and aliases), loaded on demand within a memory budget:
 *
 * ```js
 * const manager = new Manager({ memoryBudgetBytes: 4e9, keepAliveMs: 300_000, folders: ['models'] })
 * await manager.scan({ nCtx: 4096 })            // each .gguf and Hugging Face folder, by name
 * const model = await manager.get('SmolLM2-135M-Instruct.Q4_1')
 * console.log((await model.generate('Hi')).text)
 * await model.close()                           // this handle only: the manager keeps the model
 * ```
 *
 * `get` loads a model when needed; a load that would exceed the budget first unloads the
 * least recently used idle models. A model is in use while a `Model` from `get` is open (or a
 * call runs on it), and is never unloaded for another (the load then rejects with
 * `OutOfMemoryError`), so close models when done. Loads run off the event loop. */
export declare class Manager implements AsyncDisposable {
    #private;
    /** A manager with no models yet. Throws `ModelNotFoundError` for a folder that does not
     * exist, `InvalidArgumentError` for an unknown or invalid option. */
    constructor(options?: ManagerOptions);
    /** Register the model at `path` (a GGUF file or a Hugging Face folder) as `id`, to load
     * with `options` when first used; reads its headers only. Rejects with
     * `InvalidArgumentError` for an id already taken or a path outside the folders, with
     * `ModelNotFoundError` for a missing path. */
    register(id: string, path: string, options?: ManagedLoadOptions): Promise<void>;
    /** Register the model `endpoint` serves as `id` (see `Loader.remote`), opened with
     * `options` when `get` first asks for it; it takes nothing from the budget. Nothing is sent
     * to the endpoint here: `get` rejects with `ModelNotFoundError` or `BackendError` as
     * `Loader.remote` does. Rejects with `InvalidArgumentError` for an id already taken, a URL
     * that is not http(s), or a missing or unknown endpoint key. */
    registerRemote(id: string, endpoint: RemoteEndpoint, options?: ManagedLoadOptions): Promise<void>;
    /** Give the model `name` a remote fallback: when loading its local model fails (a missing
     * or broken file, too little memory), `get` resolves with the model `endpoint` serves
     * instead (see `Loader.remote`), with the local failure in `info.skippedBackends`.
     * Rejects with `ModelNotFoundError` for an unknown name. */
    setFallback(name: string, endpoint: RemoteEndpoint): Promise<void>;
    /** Make `alias` another name for the model `id`. */
    alias(alias: string, id: string): void;
    /** Register every model in the folders not registered yet (each `.gguf` file as its name
     * without `.gguf`, each Hugging Face folder as its name), to load with `options`; resolves
     * with the new ids, sorted. */
    scan(options?: ManagedLoadOptions): Promise<string[]>;
    /** Download a model from the Hugging Face Hub into the first of the manager's folders and
     * register it (as `scan` names it), to load with the load options among `options`:
     *
     * ```js
     * const { id } = await manager.pull('bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M')
     * const model = await manager.get(id)
     * ```
     *
     * `spec` is `owner/name` or `owner/name:QUANT` (a GGUF repo's file by quantization, `Q4_K_M`
     * when it holds several; a repo without GGUF files gives the Hugging Face folder files uml
     * reads). Each file resumes from a `.part` an earlier pull left and is kept only when its
     * hash matches what the hub lists; a model already there is checked, not fetched again.
     * Runs off the event loop. Rejects with an AbortError when `signal` aborts or `onProgress`
     * returns false (an exception from `onProgress` cancels too, and is what it rejects with),
     * `InvalidArgumentError` for a bad spec or a missing or refused token (naming `HF_TOKEN`),
     * `ModelNotFoundError` for an unknown repo, revision or tag, `InvalidModelError` for a
     * download that does not match its hash, `IoError` when the hub cannot be reached. */
    pull(spec: string, options?: PullOptions): Promise<Pulled>;
    /** The model `name` (an id or an alias), loaded first if needed. Its `close()` lets go of
     * this handle only: the manager keeps the model loaded, now idle, until it is unloaded or
     * evicted. Rejects with `ModelNotFoundError` for an unknown name, `OutOfMemoryError` when
     * it does not fit beside the models in use. */
    get(name: string): Promise<Model>;
    /** Hot-swap: load the file at `path` under the existing `name`. Once it is loaded, new `get`
     * calls resolve with it; models already handed out keep working until closed. If the load
     * fails, the old model stays. */
    swap(name: string, path: string, options?: ManagedLoadOptions): Promise<void>;
    /** Unload `name` (its memory is freed once no `Model` holds it); it loads again on the next
     * `get`. Returns the bytes the budget counted for it, 0 if it was not loaded. */
    unload(name: string): number;
    /** Unregister `name` and its aliases, unloading it; returns the bytes as `unload`. */
    remove(name: string): number;
    /** Every registered model, by id. */
    list(): ManagedModel[];
    /** The memory budget in bytes. */
    get budgetBytes(): number;
    /** What the loaded models' memory estimates add up to (what the budget counts), in bytes. */
    get usedBytes(): number;
    /** Milliseconds an idle model stays loaded; null: until it is evicted. */
    get keepAliveMs(): number | null;
    /** Whether `close()` has been called. */
    get closed(): boolean;
    /** Let go of every model: those no open `Model` holds are freed (resolves once they are),
     * the others when they close. Idempotent; later calls throw `InvalidArgumentError`. */
    close(): Promise<void>;
    /** `await using manager = new Manager(...)` closes it at the end of the block. */
    [asyncDispose](): Promise<void>;
}
/** Loads models. */
export declare class Loader {
    /** Load the model file or folder at `path`. Rejects with NOT_FOUND, INVALID_MODEL,
     * OUT_OF_MEMORY, ... naming the problem; with an AbortError when `signal` aborts or
     * `onProgress` returns false. */
    static load(path: string, options?: LoadOptions): Promise<Model>;
    /** Open the model `endpoint` serves: an OpenAI-compatible API. Its `generate`, `stream`,
     * `chat`, sessions and `embed` go to the endpoint with the same options, AbortSignals and
     * results as a local model; `info.backend` is 'remote', and `tokenize` / `renderChat`
     * reject with `UnsupportedError`. Of `options`, `maxParallel` (default 16), `maxQueued`,
     * `embeddings` and `normalizeEmbeddings` apply. It first asks the endpoint, off the event
     * loop, whether it serves the model: rejects with `ModelNotFoundError` if not, `BackendError`
     * if it cannot be reached, `InvalidArgumentError` for a URL that is not http(s) or a missing
     * or unknown endpoint key. */
    static remote(endpoint: RemoteEndpoint, options?: ManagedLoadOptions): Promise<Model>;
}
