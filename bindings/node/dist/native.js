"use strict";
// The native addon (`uml.node`, built from ../src by scripts/build-addon.js) and the shape of
// what it exports. Only this package uses it; the public API is in index.ts.
Object.defineProperty(exports, "__esModule", { value: true });
exports.native = exports.OPENMP_SPIN = void 0;
const path = require("node:path");
/** What GOMP_SPINCOUNT llama.cpp's OpenMP runs with (core's `hardware::OPENMP_SPIN`; a test
 * checks the two agree). libgomp reads it once, when the addon loads it. */
exports.OPENMP_SPIN = ['GOMP_SPINCOUNT', '1000'];
function load() {
    // Without a spin limit, a busy machine makes llama.cpp's OpenMP threads spin for seconds at
    // every barrier; the user's own OpenMP settings win.
    if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
        process.env[exports.OPENMP_SPIN[0]] = exports.OPENMP_SPIN[1];
    }
    const file = process.env.UML_NODE_ADDON ?? path.join(__dirname, '..', 'uml.node');
    try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        return require(file);
    }
    catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new Error(`uml: cannot load the native addon ${file}: ${why}. ` +
            'Build it with `npm rebuild uml` (needs the Rust toolchain), or set UML_NODE_ADDON to its path.');
    }
}
exports.native = load();
