"use strict";
// Errors: one class per core error kind, all under UmlError, each with core's stable `code`
// and core's message. The addon encodes a core error as `[uml:CODE] message`; `translate`
// turns that into the class for CODE.
Object.defineProperty(exports, "__esModule", { value: true });
exports.ERRORS_BY_CODE = exports.BusyError = exports.BufferTooSmallError = exports.InternalError = exports.ModelClosedError = exports.UnsupportedError = exports.ContextOverflowError = exports.IoError = exports.BackendError = exports.AbortError = exports.OutOfMemoryError = exports.InvalidModelError = exports.UnsupportedFormatError = exports.ModelNotFoundError = exports.InvalidArgumentError = exports.UmlError = void 0;
exports.translate = translate;
/** Every error uml raises. `code` says which kind; `message` is core's, naming the problem and
 * the fix. */
class UmlError extends Error {
    code;
    constructor(code, message, options) {
        super(message, options);
        this.code = code;
        this.name = new.target.name;
    }
}
exports.UmlError = UmlError;
/** A bad argument or option (named in the message). */
class InvalidArgumentError extends UmlError {
    constructor(message, options) {
        super('INVALID_ARGUMENT', message, options);
    }
}
exports.InvalidArgumentError = InvalidArgumentError;
/** No file or folder at the path. */
class ModelNotFoundError extends UmlError {
    constructor(message) {
        super('NOT_FOUND', message);
    }
}
exports.ModelNotFoundError = ModelNotFoundError;
/** Not a model format uml reads (or a legacy one, with the conversion to do). */
class UnsupportedFormatError extends UmlError {
    constructor(message) {
        super('UNSUPPORTED_FORMAT', message);
    }
}
exports.UnsupportedFormatError = UnsupportedFormatError;
/** A model file that is corrupt or truncated. */
class InvalidModelError extends UmlError {
    constructor(message) {
        super('INVALID_MODEL', message);
    }
}
exports.InvalidModelError = InvalidModelError;
/** Not enough memory for the model with these options (the numbers are in the message). */
class OutOfMemoryError extends UmlError {
    constructor(message) {
        super('OUT_OF_MEMORY', message);
    }
}
exports.OutOfMemoryError = OutOfMemoryError;
/** Work stopped by an AbortSignal (or by `onProgress` returning false). Named `AbortError`, as
 * Node's own APIs name theirs; `cause` is the signal's reason. */
class AbortError extends UmlError {
    constructor(message = 'the operation was aborted', options) {
        super('CANCELLED', message, options);
    }
}
exports.AbortError = AbortError;
/** The engine (llama.cpp, candle) failed. */
class BackendError extends UmlError {
    constructor(message) {
        super('BACKEND', message);
    }
}
exports.BackendError = BackendError;
/** Reading a file failed. */
class IoError extends UmlError {
    constructor(message) {
        super('IO', message);
    }
}
exports.IoError = IoError;
/** The prompt (or a text to embed) does not fit the context. */
class ContextOverflowError extends UmlError {
    constructor(message) {
        super('CONTEXT_OVERFLOW', message);
    }
}
exports.ContextOverflowError = ContextOverflowError;
/** The model or this build cannot do what was asked. */
class UnsupportedError extends UmlError {
    constructor(message) {
        super('UNSUPPORTED', message);
    }
}
exports.UnsupportedError = UnsupportedError;
/** The model was closed. */
class ModelClosedError extends UmlError {
    constructor(message) {
        super('MODEL_CLOSED', message);
    }
}
exports.ModelClosedError = ModelClosedError;
/** A bug in uml: please report it with the message. */
class InternalError extends UmlError {
    constructor(message) {
        super('INTERNAL', message);
    }
}
exports.InternalError = InternalError;
/** A buffer too small (C ABI only; listed so every kind has a class). */
class BufferTooSmallError extends UmlError {
    constructor(message) {
        super('BUFFER_TOO_SMALL', message);
    }
}
exports.BufferTooSmallError = BufferTooSmallError;
/** Every generation slot is running and the queue of callers waiting for one is full: try
 * again later, or load with a larger `maxParallel` / `maxQueued`. Also a chat session's
 * `send` (or `reset`) while one of its turns runs: await that turn first. */
class BusyError extends UmlError {
    constructor(message) {
        super('BUSY', message);
    }
}
exports.BusyError = BusyError;
/** The class for each code. */
exports.ERRORS_BY_CODE = {
    INVALID_ARGUMENT: InvalidArgumentError,
    NOT_FOUND: ModelNotFoundError,
    UNSUPPORTED_FORMAT: UnsupportedFormatError,
    INVALID_MODEL: InvalidModelError,
    OUT_OF_MEMORY: OutOfMemoryError,
    CANCELLED: AbortError,
    BACKEND: BackendError,
    IO: IoError,
    CONTEXT_OVERFLOW: ContextOverflowError,
    UNSUPPORTED: UnsupportedError,
    MODEL_CLOSED: ModelClosedError,
    INTERNAL: InternalError,
    BUFFER_TOO_SMALL: BufferTooSmallError,
    BUSY: BusyError,
};
const ENCODED = /^\[uml:([A-Z_]+)\] ([\s\S]*)$/;
/** The UmlError an addon error stands for; anything else is returned as it is. */
function translate(e) {
    if (!(e instanceof Error))
        return e;
    const match = ENCODED.exec(e.message);
    if (match === null)
        return e;
    const Class = exports.ERRORS_BY_CODE[match[1]];
    return Class === undefined ? new InternalError(`${match[1]}: ${match[2]}`) : new Class(match[2]);
}
