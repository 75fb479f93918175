// Errors: one class per core error kind, all under UmlError, each with core's stable `code`
// and core's message. The addon encodes a core error as `[uml:CODE] message`; `translate`
// turns that into the class for CODE.

/** The stable code of every core error kind (core's `ErrorKind::name`). */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'UNSUPPORTED_FORMAT'
  | 'INVALID_MODEL'
  | 'OUT_OF_MEMORY'
  | 'CANCELLED'
  | 'BACKEND'
  | 'IO'
  | 'CONTEXT_OVERFLOW'
  | 'UNSUPPORTED'
  | 'MODEL_CLOSED'
  | 'INTERNAL'
  | 'BUFFER_TOO_SMALL'
  | 'BUSY'

/** Every error uml raises. `code` says which kind; `message` is core's, naming the problem and
 * the fix. */
export class UmlError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** A bad argument or option (named in the message). */
export class InvalidArgumentError extends UmlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options)
  }
}
/** No file or folder at the path. */
export class ModelNotFoundError extends UmlError {
  constructor(message: string) {
    super('NOT_FOUND', message)
  }
}
/** Not a model format uml reads (or a legacy one, with the conversion to do). */
export class UnsupportedFormatError extends UmlError {
  constructor(message: string) {
    super('UNSUPPORTED_FORMAT', message)
  }
}
/** A model file that is corrupt or truncated. */
export class InvalidModelError extends UmlError {
  constructor(message: string) {
    super('INVALID_MODEL', message)
  }
}
/** Not enough memory for the model with these options (the numbers are in the message). */
export class OutOfMemoryError extends UmlError {
  constructor(message: string) {
    super('OUT_OF_MEMORY', message)
  }
}
/** Work stopped by an AbortSignal (or by `onProgress` returning false). Named `AbortError`, as
 * Node's own APIs name theirs; `cause` is the signal's reason. */
export class AbortError extends UmlError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('CANCELLED', message, options)
  }
}
/** The engine (llama.cpp, candle) failed. */
export class BackendError extends UmlError {
  constructor(message: string) {
    super('BACKEND', message)
  }
}
/** Reading a file failed. */
export class IoError extends UmlError {
  constructor(message: string) {
    super('IO', message)
  }
}
/** The prompt (or a text to embed) does not fit the context. */
export class ContextOverflowError extends UmlError {
  constructor(message: string) {
    super('CONTEXT_OVERFLOW', message)
  }
}
/** The model or this build cannot do what was asked. */
export class UnsupportedError extends UmlError {
  constructor(message: string) {
    super('UNSUPPORTED', message)
  }
}
/** The model was closed. */
export class ModelClosedError extends UmlError {
  constructor(message: string) {
    super('MODEL_CLOSED', message)
  }
}
/** A bug in uml: please report it with the message. */
export class InternalError extends UmlError {
  constructor(message: string) {
    super('INTERNAL', message)
  }
}
/** A buffer too small (C ABI only; listed so every kind has a class). */
export class BufferTooSmallError extends UmlError {
  constructor(message: string) {
    super('BUFFER_TOO_SMALL', message)
  }
}

/** Every generation slot is running and the queue of callers waiting for one is full: try
 * again later, or load with a larger `maxParallel` / `maxQueued`. Also a chat session's
 * `send` (or `reset`) while one of its turns runs: await that turn first. */
export class BusyError extends UmlError {
  constructor(message: string) {
    super('BUSY', message)
  }
}

/** The class for each code. */
export const ERRORS_BY_CODE: Record<ErrorCode, new (message: string) => UmlError> = {
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
}

const ENCODED = /^\[uml:([A-Z_]+)\] ([\s\S]*)$/

/** The UmlError an addon error stands for; anything else is returned as it is. */
export function translate(e: unknown): unknown {
  if (!(e instanceof Error)) return e
  const match = ENCODED.exec(e.message)
  if (match === null) return e
  const Class = ERRORS_BY_CODE[match[1] as ErrorCode]
  return Class === undefined ? new InternalError(`${match[1]}: ${match[2]}`) : new Class(match[2])
}
