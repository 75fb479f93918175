/** The stable code of every core error kind (core's `ErrorKind::name`). */
export type ErrorCode = 'INVALID_ARGUMENT' | 'NOT_FOUND' | 'UNSUPPORTED_FORMAT' | 'INVALID_MODEL' | 'OUT_OF_MEMORY' | 'CANCELLED' | 'BACKEND' | 'IO' | 'CONTEXT_OVERFLOW' | 'UNSUPPORTED' | 'MODEL_CLOSED' | 'INTERNAL' | 'BUFFER_TOO_SMALL' | 'BUSY';
/** Every error uml raises. `code` says which kind; `message` is core's, naming the problem and
 * the fix. */
export declare class UmlError extends Error {
    readonly code: ErrorCode;
    constructor(code: ErrorCode, message: string, options?: {
        cause?: unknown;
    });
}
/** A bad argument or option (named in the message). */
export declare class InvalidArgumentError extends UmlError {
    constructor(message: string, options?: {
        cause?: unknown;
    });
}
/** No file or folder at the path. */
export declare class ModelNotFoundError extends UmlError {
    constructor(message: string);
}
/** Not a model format uml reads (or a legacy one, with the conversion to do). */
export declare class UnsupportedFormatError extends UmlError {
    constructor(message: string);
}
/** A model file that is corrupt or truncated. */
export declare class InvalidModelError extends UmlError {
    constructor(message: string);
}
/** Not enough memory for the model with these options (the numbers are in the message). */
export declare class OutOfMemoryError extends UmlError {
    constructor(message: string);
}
/** Work stopped by an AbortSignal (or by `onProgress` returning false). Named `AbortError`, as
 * Node's own APIs name theirs; `cause` is the signal's reason. */
export declare class AbortError extends UmlError {
    constructor(message?: string, options?: {
        cause?: unknown;
    });
}
/** The engine (llama.cpp, candle) failed. */
export declare class BackendError extends UmlError {
    constructor(message: string);
}
/** Reading a file failed. */
export declare class IoError extends UmlError {
    constructor(message: string);
}
/** The prompt (or a text to embed) does not fit the context. */
export declare class ContextOverflowError extends UmlError {
    constructor(message: string);
}
/** The model or this build cannot do what was asked. */
export declare class UnsupportedError extends UmlError {
    constructor(message: string);
}
/** The model was closed. */
export declare class ModelClosedError extends UmlError {
    constructor(message: string);
}
/** A bug in uml: please report it with the message. */
export declare class InternalError extends UmlError {
    constructor(message: string);
}
/** A buffer too small (C ABI only; listed so every kind has a class). */
export declare class BufferTooSmallError extends UmlError {
    constructor(message: string);
}
/** Every generation slot is running and the queue of callers waiting for one is full: try
 * again later, or load with a larger `maxParallel` / `maxQueued`. Also a chat session's
 * `send` (or `reset`) while one of its turns runs: await that turn first. */
export declare class BusyError extends UmlError {
    constructor(message: string);
}
/** The class for each code. */
export declare const ERRORS_BY_CODE: Record<ErrorCode, new (message: string) => UmlError>;
/** The UmlError an addon error stands for; anything else is returned as it is. */
export declare function translate(e: unknown): unknown;
