"use strict";
// uml for Node: load local models (GGUF through llama.cpp, Hugging Face folders through candle)
// and generate, stream, chat (one-off or as a session) and embed in-process; a Manager keeps
// several by id within a memory budget. Everything long returns a promise and runs
// off the event loop; every long call that can stop midway takes an AbortSignal.
Object.defineProperty(exports, "__esModule", { value: true });
exports.Loader = exports.Manager = exports.ChatSession = exports.Model = exports.TextStream = exports.version = exports.UnsupportedFormatError = exports.UnsupportedError = exports.UmlError = exports.OutOfMemoryError = exports.ModelNotFoundError = exports.ModelClosedError = exports.IoError = exports.InvalidModelError = exports.InvalidArgumentError = exports.InternalError = exports.ERRORS_BY_CODE = exports.ContextOverflowError = exports.BusyError = exports.BufferTooSmallError = exports.BackendError = exports.AbortError = void 0;
exports.inspect = inspect;
exports.estimate = estimate;
exports.hardware = hardware;
const native_1 = require("./native");
const errors_1 = require("./errors");
var errors_2 = require("./errors");
Object.defineProperty(exports, "AbortError", { enumerable: true, get: function () { return errors_2.AbortError; } });
Object.defineProperty(exports, "BackendError", { enumerable: true, get: function () { return errors_2.BackendError; } });
Object.defineProperty(exports, "BufferTooSmallError", { enumerable: true, get: function () { return errors_2.BufferTooSmallError; } });
Object.defineProperty(exports, "BusyError", { enumerable: true, get: function () { return errors_2.BusyError; } });
Object.defineProperty(exports, "ContextOverflowError", { enumerable: true, get: function () { return errors_2.ContextOverflowError; } });
Object.defineProperty(exports, "ERRORS_BY_CODE", { enumerable: true, get: function () { return errors_2.ERRORS_BY_CODE; } });
Object.defineProperty(exports, "InternalError", { enumerable: true, get: function () { return errors_2.InternalError; } });
Object.defineProperty(exports, "InvalidArgumentError", { enumerable: true, get: function () { return errors_2.InvalidArgumentError; } });
Object.defineProperty(exports, "InvalidModelError", { enumerable: true, get: function () { return errors_2.InvalidModelError; } });
Object.defineProperty(exports, "IoError", { enumerable: true, get: function () { return errors_2.IoError; } });
Object.defineProperty(exports, "ModelClosedError", { enumerable: true, get: function () { return errors_2.ModelClosedError; } });
Object.defineProperty(exports, "ModelNotFoundError", { enumerable: true, get: function () { return errors_2.ModelNotFoundError; } });
Object.defineProperty(exports, "OutOfMemoryError", { enumerable: true, get: function () { return errors_2.OutOfMemoryError; } });
Object.defineProperty(exports, "UmlError", { enumerable: true, get: function () { return errors_2.UmlError; } });
Object.defineProperty(exports, "UnsupportedError", { enumerable: true, get: function () { return errors_2.UnsupportedError; } });
Object.defineProperty(exports, "UnsupportedFormatError", { enumerable: true, get: function () { return errors_2.UnsupportedFormatError; } });
/** The version of uml. */
exports.version = native_1.native.version();
/** Options as JSON for the addon. A value JSON cannot hold (a cycle, absurd nesting) is an
 * InvalidArgumentError here, before anything reaches the engine. */
function toJson(value, what) {
    try {
        return JSON.stringify(value) ?? '';
    }
    catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new errors_1.InvalidArgumentError(`${what} cannot be passed to uml (does it contain itself?): ${why}`);
    }
}
function abortError(signal) {
    return new errors_1.AbortError('the operation was aborted', { cause: signal.reason });
}
/** Run `work` with a cancel token tied to `signal`; an aborted signal rejects with an
 * AbortError, and addon errors become UmlErrors. */
async function cancellable(signal, work) {
    if (signal?.aborted)
        throw abortError(signal);
    const token = new native_1.native.CancelToken();
    const onAbort = () => token.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
        const result = await work(token);
        if (signal?.aborted)
            throw abortError(signal);
        return result;
    }
    catch (e) {
        if (signal?.aborted)
            throw abortError(signal);
        throw (0, errors_1.translate)(e);
    }
    finally {
        signal?.removeEventListener('abort', onAbort);
    }
}
/** Read a task's progress events until it ends, handing each to `onEvent`: false from it
 * cancels the task, and so does an exception, which is returned (the caller rejects with it,
 * whatever the cancelled task then says). Rejects with the task's own error otherwise. */
async function followProgress(series, token, onEvent) {
    let failure;
    for (;;) {
        let event;
        try {
            event = await series.next();
        }
        catch (e) {
            if (failure !== undefined)
                return failure;
            throw e;
        }
        if (event === null)
            return failure;
        if (onEvent === undefined || failure !== undefined)
            continue;
        try {
            if (onEvent(event) === false)
                token.cancel();
        }
        catch (error) {
            failure = { error };
            token.cancel();
        }
    }
}
/** Addon errors become UmlErrors. */
async function call(work) {
    try {
        return await work();
    }
    catch (e) {
        throw (0, errors_1.translate)(e);
    }
}
function split(options) {
    const { signal, ...rest } = options;
    return [signal, rest];
}
/** What the file or folder at `path` is, from its headers (no weights are read). */
async function inspect(path) {
    return call(() => native_1.native.inspect(path));
}
/** The memory loading `path` with `options` would take, and whether it fits now. */
async function estimate(path, options = {}) {
    const { signal: _signal, onProgress: _onProgress, ...rest } = options;
    return call(() => native_1.native.estimate(path, toJson(rest, 'load options')));
}
/** The CPU, memory and GPUs uml sees. */
function hardware() {
    return native_1.native.hardware();
}
/** Text pieces of a generation as they come: `for await (const piece of stream)`. Breaking
 * out of the loop cancels the generation; `completion` holds the result once it has ended. */
class TextStream {
    #stream;
    #signal;
    #onAbort;
    #done = false;
    /** The last `next()` or `return()`, which the next one waits for. */
    #queue = Promise.resolve();
    /** @internal */
    constructor(start, signal) {
        if (signal?.aborted)
            throw abortError(signal);
        const token = new native_1.native.CancelToken();
        try {
            this.#stream = start(token);
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
        this.#signal = signal;
        this.#onAbort = () => token.cancel();
        signal?.addEventListener('abort', this.#onAbort, { once: true });
    }
    [Symbol.asyncIterator]() {
        return this;
    }
    /** The next piece; done once the generation has ended. Calls made before the previous one
     * settled queue up behind it. */
    next() {
        const result = this.#queue.then(() => this.#next());
        this.#queue = result.then(() => undefined, () => undefined);
        return result;
    }
    async #next() {
        if (this.#done)
            return { done: true, value: undefined };
        let piece;
        try {
            piece = await this.#stream.next();
        }
        catch (e) {
            this.#finish();
            if (this.#signal?.aborted)
                throw abortError(this.#signal);
            throw (0, errors_1.translate)(e);
        }
        if (piece === null) {
            this.#finish();
            if (this.#signal?.aborted)
                throw abortError(this.#signal);
            return { done: true, value: undefined };
        }
        return { done: false, value: piece };
    }
    /** Stop the generation (what `break` calls) and wait for it to end. */
    return() {
        this.#stream.cancel();
        const result = this.#queue.then(() => this.#return());
        this.#queue = result.then(() => undefined);
        return result;
    }
    async #return() {
        if (!this.#done) {
            this.#stream.cancel();
            try {
                while ((await this.#stream.next()) !== null) {
                    // Pieces made before the cancel landed are dropped.
                }
            }
            catch {
                // Ending is all that is wanted here.
            }
            this.#finish();
        }
        return { done: true, value: undefined };
    }
    /** The result (text, finishReason, usage) once the stream has ended well, else null. */
    get completion() {
        return this.#stream.completion();
    }
    #finish() {
        this.#done = true;
        this.#signal?.removeEventListener('abort', this.#onAbort);
    }
}
exports.TextStream = TextStream;
const asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose');
/** A loaded model. Any number of calls may run at once; `close()` (or the end of an
 * `await using` block) cancels them and frees the memory. */
class Model {
    #native;
    /** @internal */
    constructor(model) {
        this.#native = model;
    }
    /** The path it was loaded from. */
    get path() {
        return this.#native.path;
    }
    get closed() {
        return this.#native.closed;
    }
    /** How it runs: backend, skipped backends and why, the load plan, memory, the model's info. */
    get info() {
        try {
            return this.#native.info();
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** The width of its embedding vectors. */
    get embeddingSize() {
        try {
            return this.#native.embeddingSize;
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Generate a continuation of `prompt`. */
    async generate(prompt, options = {}) {
        const [signal, rest] = split(options);
        const json = toJson(rest, 'generate options');
        return cancellable(signal, (t) => this.#native.generate(prompt, json, t));
    }
    /** Generate, as an async iterator of text pieces. */
    stream(prompt, options = {}) {
        const [signal, rest] = split(options);
        const json = toJson(rest, 'generate options');
        return new TextStream((t) => this.#native.stream(prompt, json, t), signal);
    }
    /** Reply to `messages` with the model's own chat template. */
    async chat(messages, options = {}) {
        const [signal, rest] = split(options);
        const [json, msgs] = [toJson(rest, 'generate options'), toJson(messages, 'messages')];
        return cancellable(signal, (t) => this.#native.chat(msgs, json, t));
    }
    /** `chat`, as an async iterator of text pieces. */
    chatStream(messages, options = {}) {
        const [signal, rest] = split(options);
        const [json, msgs] = [toJson(rest, 'generate options'), toJson(messages, 'messages')];
        return new TextStream((t) => this.#native.chatStream(msgs, json, t), signal);
    }
    /** A conversation with this model, starting from `messages` (a system prompt, earlier
     * turns, or none): each `send` adds a message and the reply, and the model keeps the
     * conversation's place in its cache, so a turn evaluates only the tokens it adds. Closing
     * the model ends its sessions (their turns reject with `ModelClosedError`). */
    session(messages = []) {
        const msgs = toJson(messages, 'messages');
        try {
            return new ChatSession(this.#native.session(msgs));
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** The prompt `chat` would generate from. */
    async renderChat(messages, options = {}) {
        const msgs = toJson(messages, 'messages');
        const add = options.addGenerationPrompt ?? true;
        return cancellable(options.signal, (t) => this.#native.renderChat(msgs, add, t));
    }
    /** One vector per text (a model loaded with `embeddings: true`). */
    async embed(texts, options = {}) {
        if (!Array.isArray(texts))
            throw new errors_1.InvalidArgumentError('embed: texts must be an array of strings');
        return cancellable(options.signal, (t) => this.#native.embed(texts, t));
    }
    /** Token ids of `text`; `addSpecial` (default true) adds BOS etc. as the model wants. */
    async tokenize(text, options = {}) {
        return call(() => this.#native.tokenize(text, options.addSpecial ?? true));
    }
    /** The text of `tokens`. */
    async detokenize(tokens) {
        return call(() => this.#native.detokenize(tokens));
    }
    /** Engine throughput, as llama-bench measures it (`{ nPrompt, nGen, repetitions }`). */
    async bench(options = {}) {
        return call(() => this.#native.bench(toJson(options, 'bench options')));
    }
    /** Cancel running calls, wait for them, and free the model. Idempotent. A model from
     * `Manager.get`: this handle lets go of it, and the manager keeps it loaded (now idle). */
    async close() {
        return call(() => this.#native.close());
    }
    /** `await using model = await Loader.load(...)` closes it at the end of the block. */
    async [asyncDispose]() {
        await this.close();
    }
}
exports.Model = Model;
/** A turn's signal, role and options JSON; a content or role that is not a string is an
 * InvalidArgumentError here (the addon would only say that a conversion failed). */
function turnArgs(method, content, options) {
    if (typeof content !== 'string') {
        throw new errors_1.InvalidArgumentError(`${method}: content must be a string, got ${typeof content}; pass the message text`);
    }
    const { signal, role = 'user', ...rest } = options;
    if (typeof role !== 'string') {
        throw new errors_1.InvalidArgumentError(`${method}: role must be a string such as 'user', got ${typeof role}`);
    }
    return [signal, role, toJson(rest, 'generate options')];
}
/** A conversation with a model (`model.session(messages)`): it keeps its history, and its
 * place in the model's cache, between turns. One turn runs at a time: a `send` while another
 * runs rejects with `BusyError`. `close()` (or the end of an `await using` block) cancels a
 * running turn and releases what the model kept for the conversation. */
class ChatSession {
    #native;
    /** @internal */
    constructor(session) {
        this.#native = session;
    }
    /** One turn: add `content` as a message (role `options.role`, default 'user'), generate the
     * assistant's reply over the whole conversation with the model's chat template, and add the
     * reply; resolves with the completion, as `Model.chat` does. A turn that fails, or is
     * aborted before any text, leaves the history as it was. */
    async send(content, options = {}) {
        const [signal, role, json] = turnArgs('send', content, options);
        return cancellable(signal, (t) => this.#native.send(role, content, json, t));
    }
    /** `send`, as an async iterator of text pieces; the reply joins the history when it ends. */
    sendStream(content, options = {}) {
        const [signal, role, json] = turnArgs('sendStream', content, options);
        return new TextStream((t) => this.#native.sendStream(role, content, json, t), signal);
    }
    /** The conversation so far: the starting messages, then each finished turn's message and
     * reply (a running turn's appear when it ends). */
    get messages() {
        try {
            return this.#native.messages;
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Start over from `messages` (default none); the model's cache keeps whatever prefix
     * still matches. Throws `BusyError` while a turn runs. */
    reset(messages = []) {
        const msgs = toJson(messages, 'messages');
        try {
            this.#native.reset(msgs);
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Whether `close()` has been called. */
    get closed() {
        return this.#native.closed;
    }
    /** Cancel a running turn, wait for it, and release what the model kept for the
     * conversation. Idempotent; later calls throw `InvalidArgumentError`. */
    async close() {
        return call(() => this.#native.close());
    }
    /** `await using session = model.session(...)` closes it at the end of the block. */
    async [asyncDispose]() {
        await this.close();
    }
}
exports.ChatSession = ChatSession;
/** Load options as JSON for the addon, without the keys a manager cannot use. */
function managedOptions(options) {
    const { signal: _signal, onProgress: _onProgress, ...rest } = options;
    return toJson(rest, 'load options');
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
class Manager {
    #native;
    /** A manager with no models yet. Throws `ModelNotFoundError` for a folder that does not
     * exist, `InvalidArgumentError` for an unknown or invalid option. */
    constructor(options = {}) {
        const json = toJson(options, 'manager options');
        try {
            this.#native = new native_1.native.Manager(json);
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Register the model at `path` (a GGUF file or a Hugging Face folder) as `id`, to load
     * with `options` when first used; reads its headers only. Rejects with
     * `InvalidArgumentError` for an id already taken or a path outside the folders, with
     * `ModelNotFoundError` for a missing path. */
    async register(id, path, options = {}) {
        const json = managedOptions(options);
        return call(() => this.#native.register(id, path, json));
    }
    /** Register the model `endpoint` serves as `id` (see `Loader.remote`), opened with
     * `options` when `get` first asks for it; it takes nothing from the budget. Nothing is sent
     * to the endpoint here: `get` rejects with `ModelNotFoundError` or `BackendError` as
     * `Loader.remote` does. Rejects with `InvalidArgumentError` for an id already taken, a URL
     * that is not http(s), or a missing or unknown endpoint key. */
    async registerRemote(id, endpoint, options = {}) {
        const json = managedOptions(options);
        const ep = toJson(endpoint, 'remote endpoint');
        return call(() => this.#native.registerRemote(id, ep, json));
    }
    /** Give the model `name` a remote fallback: when loading its local model fails (a missing
     * or broken file, too little memory), `get` resolves with the model `endpoint` serves
     * instead (see `Loader.remote`), with the local failure in `info.skippedBackends`.
     * Rejects with `ModelNotFoundError` for an unknown name. */
    async setFallback(name, endpoint) {
        const ep = toJson(endpoint, 'remote endpoint');
        return call(() => this.#native.setFallback(name, ep));
    }
    /** Make `alias` another name for the model `id`. */
    alias(alias, id) {
        try {
            this.#native.alias(alias, id);
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Register every model in the folders not registered yet (each `.gguf` file as its name
     * without `.gguf`, each Hugging Face folder as its name), to load with `options`; resolves
     * with the new ids, sorted. */
    async scan(options = {}) {
        const json = managedOptions(options);
        return call(() => this.#native.scan(json));
    }
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
    async pull(spec, options = {}) {
        const { revision, files, endpoint, token, onProgress, signal, ...load } = options;
        const pullJson = toJson({ revision, files, endpoint, token }, 'pull options');
        const loadJson = managedOptions(load);
        return cancellable(signal, async (cancel) => {
            const pulling = this.#native.startPull(spec, pullJson, loadJson, cancel);
            const failure = await followProgress(pulling, cancel, onProgress && ((event) => onProgress(event.file, event.bytes, event.total)));
            if (failure !== undefined)
                throw failure.error;
            return pulling.report();
        });
    }
    /** The model `name` (an id or an alias), loaded first if needed. Its `close()` lets go of
     * this handle only: the manager keeps the model loaded, now idle, until it is unloaded or
     * evicted. Rejects with `ModelNotFoundError` for an unknown name, `OutOfMemoryError` when
     * it does not fit beside the models in use. */
    async get(name) {
        return call(async () => new Model(await this.#native.get(name)));
    }
    /** Hot-swap: load the file at `path` under the existing `name`. Once it is loaded, new `get`
     * calls resolve with it; models already handed out keep working until closed. If the load
     * fails, the old model stays. */
    async swap(name, path, options = {}) {
        const json = managedOptions(options);
        return call(() => this.#native.swap(name, path, json));
    }
    /** Unload `name` (its memory is freed once no `Model` holds it); it loads again on the next
     * `get`. Returns the bytes the budget counted for it, 0 if it was not loaded. */
    unload(name) {
        try {
            return this.#native.unload(name);
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Unregister `name` and its aliases, unloading it; returns the bytes as `unload`. */
    remove(name) {
        try {
            return this.#native.remove(name);
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Every registered model, by id. */
    list() {
        try {
            return this.#native.list();
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** The memory budget in bytes. */
    get budgetBytes() {
        try {
            return this.#native.budgetBytes;
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** What the loaded models' memory estimates add up to (what the budget counts), in bytes. */
    get usedBytes() {
        try {
            return this.#native.usedBytes;
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Milliseconds an idle model stays loaded; null: until it is evicted. */
    get keepAliveMs() {
        try {
            return this.#native.keepAliveMs;
        }
        catch (e) {
            throw (0, errors_1.translate)(e);
        }
    }
    /** Whether `close()` has been called. */
    get closed() {
        return this.#native.closed;
    }
    /** Let go of every model: those no open `Model` holds are freed (resolves once they are),
     * the others when they close. Idempotent; later calls throw `InvalidArgumentError`. */
    async close() {
        return call(() => this.#native.close());
    }
    /** `await using manager = new Manager(...)` closes it at the end of the block. */
    async [asyncDispose]() {
        await this.close();
    }
}
exports.Manager = Manager;
/** Loads models. */
class Loader {
    /** Load the model file or folder at `path`. Rejects with NOT_FOUND, INVALID_MODEL,
     * OUT_OF_MEMORY, ... naming the problem; with an AbortError when `signal` aborts or
     * `onProgress` returns false. */
    static async load(path, options = {}) {
        const { signal, onProgress, ...rest } = options;
        const json = toJson(rest, 'load options');
        return cancellable(signal, async (token) => {
            const loading = native_1.native.startLoad(path, json, token);
            const failure = await followProgress(loading, token, onProgress && ((event) => onProgress(event.stage, event.fraction)));
            if (failure !== undefined) {
                // If the load finished before the cancel reached it, free the model nobody will get
                // (if it failed instead, there is none to take).
                let unwanted;
                try {
                    unwanted = loading.model();
                }
                catch {
                    throw failure.error;
                }
                await unwanted.close();
                throw failure.error;
            }
            return new Model(loading.model());
        });
    }
    /** Open the model `endpoint` serves: an OpenAI-compatible API. Its `generate`, `stream`,
     * `chat`, sessions and `embed` go to the endpoint with the same options, AbortSignals and
     * results as a local model; `info.backend` is 'remote', and `tokenize` / `renderChat`
     * reject with `UnsupportedError`. Of `options`, `maxParallel` (default 16), `maxQueued`,
     * `embeddings` and `normalizeEmbeddings` apply. It first asks the endpoint, off the event
     * loop, whether it serves the model: rejects with `ModelNotFoundError` if not, `BackendError`
     * if it cannot be reached, `InvalidArgumentError` for a URL that is not http(s) or a missing
     * or unknown endpoint key. */
    static async remote(endpoint, options = {}) {
        const json = managedOptions(options);
        const ep = toJson(endpoint, 'remote endpoint');
        return call(async () => new Model(await native_1.native.loadRemote(ep, json)));
    }
}
exports.Loader = Loader;
// A generation still decoding while the process exits races llama.cpp's static destructors:
// stop them all first.
process.once('exit', () => native_1.native.shutdown());
