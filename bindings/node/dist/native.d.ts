/** A core cancel token (`src/cancel.rs`). */
export interface NativeCancelToken {
    cancel(): void;
    readonly cancelled: boolean;
}
/** A series pulled one promise at a time: `null` marks its end (`src/task.rs`). */
export interface NativeSeries<T> {
    next(): Promise<T | null>;
}
export interface NativeLoading extends NativeSeries<{
    stage: string;
    fraction: number;
}> {
    model(): NativeModel;
}
export interface NativeStream extends NativeSeries<string> {
    completion(): unknown;
    cancel(): void;
    readonly ended: boolean;
}
export interface NativeModel {
    close(): Promise<void>;
    readonly closed: boolean;
    readonly path: string;
    readonly embeddingSize: number;
    info(): unknown;
    generate(prompt: string, paramsJson: string, cancel: NativeCancelToken): Promise<unknown>;
    chat(messagesJson: string, paramsJson: string, cancel: NativeCancelToken): Promise<unknown>;
    stream(prompt: string, paramsJson: string, cancel: NativeCancelToken): NativeStream;
    chatStream(messagesJson: string, paramsJson: string, cancel: NativeCancelToken): NativeStream;
    renderChat(messagesJson: string, addGenerationPrompt: boolean, cancel: NativeCancelToken): Promise<string>;
    embed(texts: string[], cancel: NativeCancelToken): Promise<Float32Array[]>;
    tokenize(text: string, addSpecial: boolean): Promise<number[]>;
    detokenize(tokens: number[]): Promise<string>;
    bench(optionsJson: string): Promise<unknown>;
    session(messagesJson: string): NativeChatSession;
}
/** A chat session (`src/session.rs`). */
export interface NativeChatSession {
    send(role: string, content: string, paramsJson: string, cancel: NativeCancelToken): Promise<unknown>;
    sendStream(role: string, content: string, paramsJson: string, cancel: NativeCancelToken): NativeStream;
    readonly messages: unknown;
    reset(messagesJson: string): void;
    close(): Promise<void>;
    readonly closed: boolean;
}
/** A model manager (`src/manager.rs`). */
export interface NativePulling extends NativeSeries<{
    file: string;
    bytes: number;
    total: number;
}> {
    report(): unknown;
}
export interface NativeManager {
    register(id: string, path: string, loadOptionsJson: string): Promise<void>;
    registerRemote(id: string, endpointJson: string, loadOptionsJson: string): Promise<void>;
    setFallback(name: string, endpointJson: string): Promise<void>;
    alias(alias: string, id: string): void;
    scan(loadOptionsJson: string): Promise<string[]>;
    startPull(spec: string, pullOptionsJson: string, loadOptionsJson: string, cancel: NativeCancelToken): NativePulling;
    get(name: string): Promise<NativeModel>;
    swap(name: string, path: string, loadOptionsJson: string): Promise<void>;
    unload(name: string): number;
    remove(name: string): number;
    list(): unknown;
    readonly budgetBytes: number;
    readonly usedBytes: number;
    readonly keepAliveMs: number | null;
    close(): Promise<void>;
    readonly closed: boolean;
}
export interface Native {
    version(): string;
    errorKinds(): Array<[number, string]>;
    inspect(path: string): Promise<unknown>;
    estimate(path: string, optionsJson: string): Promise<unknown>;
    hardware(): unknown;
    shutdown(): void;
    openmpSpin(): [string, string];
    startLoad(path: string, optionsJson: string, cancel: NativeCancelToken): NativeLoading;
    loadRemote(endpointJson: string, optionsJson: string): Promise<NativeModel>;
    CancelToken: new () => NativeCancelToken;
    Manager: new (optionsJson: string) => NativeManager;
}
/** What GOMP_SPINCOUNT llama.cpp's OpenMP runs with (core's `hardware::OPENMP_SPIN`; a test
 * checks the two agree). libgomp reads it once, when the addon loads it. */
export declare const OPENMP_SPIN: [string, string];
export declare const native: Native;
