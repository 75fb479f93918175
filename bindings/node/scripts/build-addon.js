#!/usr/bin/env node
// Builds the native addon `uml.node` from the Rust sources (`cargo build --release -p uml-node`).
//
//   node scripts/build-addon.js               build it, always
//   node scripts/build-addon.js --if-needed   npm's install step: keep a prebuilt uml.node if
//                                              it loads on this machine, else build it
//   node scripts/build-addon.js --stage-sources / --unstage-sources
//                                              npm pack's prepack/postpack: put the Rust sources
//                                              the build needs into rust/ inside the package, so
//                                              an installed tarball can build on a machine the
//                                              prebuilt addon does not fit
//
// The sources are the uml workspace this package sits in (bindings/node), or the rust/ copy in
// an installed tarball. The build needs the Rust toolchain (https://rustup.rs), cmake and a C++
// compiler; it takes 10-20 minutes the first time (llama.cpp), seconds after that.
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const PACKAGE = path.resolve(__dirname, '..')
const ADDON = path.join(PACKAGE, 'uml.node')
const STAGED = path.join(PACKAGE, 'rust')

function fail(message) {
  console.error(`uml: ${message}`)
  process.exit(1)
}

/** Why `file` does not load in a fresh Node process (an addon built for another CPU dies there
 * with an illegal instruction, not here), or null when it loads. */
function loadError(file) {
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, GOMP_SPINCOUNT: process.env.GOMP_SPINCOUNT ?? '1000' },
  })
  if (probe.status === 0) return null
  const reason = (probe.stderr ?? '').split('\n').find((line) => /Error|error/.test(line))
  return reason ?? `exit status ${probe.status ?? probe.signal}`
}

/** The workspace root that holds this package's Rust sources, or null. */
function sources() {
  const inRepo = path.resolve(PACKAGE, '..', '..')
  if (fs.existsSync(path.join(inRepo, 'Cargo.toml')) && fs.existsSync(path.join(inRepo, 'core'))) {
    return inRepo
  }
  if (fs.existsSync(path.join(STAGED, 'Cargo.toml'))) return STAGED
  return null
}

/** The workspace root that holds this package's Rust sources. */
function workspace() {
  const root = sources()
  if (root !== null) return root
  return fail(
    'no Rust sources to build the addon from (neither the uml repository around this package ' +
      `nor ${STAGED}); install from the repository or from a tarball made by npm pack`,
  )
}

function build() {
  const root = workspace()
  const cargo = process.env.CARGO ?? 'cargo'
  const version = spawnSync(cargo, ['--version'], { stdio: 'ignore' })
  if (version.error || version.status !== 0) {
    fail(
      'building the native addon needs the Rust toolchain, and `cargo` was not found. ' +
        'Install it from https://rustup.rs (plus cmake and a C++ compiler), then run `npm rebuild uml`.',
    )
  }
  console.error(`uml: building the native addon in ${root} (the first build compiles llama.cpp: 10-20 minutes)`)
  const run = spawnSync(cargo, ['build', '--release', '-p', 'uml-node'], { cwd: root, stdio: 'inherit' })
  if (run.status !== 0) fail(`cargo build failed (exit ${run.status}); the errors are above`)
  const metadata = spawnSync(cargo, ['metadata', '--format-version', '1', '--no-deps'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
  if (metadata.status !== 0) fail('cargo metadata failed: ' + metadata.stderr)
  const target = JSON.parse(metadata.stdout).target_directory
  const built = path.join(target, 'release', 'libuml_node.so')
  if (!fs.existsSync(built)) fail(`the build did not produce ${built}`)
  // Copy to a temporary name first: a running process may have the old addon mapped.
  fs.copyFileSync(built, ADDON + '.tmp')
  fs.renameSync(ADDON + '.tmp', ADDON)
  console.error(`uml: built ${ADDON}`)
}

/** The files of the workspace the addon's build needs, for npm pack. */
const SOURCES = ['Cargo.lock', '.cargo/config.toml', 'core', 'tests/support', 'bindings/node/Cargo.toml', 'bindings/node/build.rs', 'bindings/node/src']

function stageSources() {
  const root = path.resolve(PACKAGE, '..', '..')
  fs.rmSync(STAGED, { recursive: true, force: true })
  for (const item of SOURCES) {
    const from = path.join(root, item)
    if (!fs.existsSync(from)) fail(`cannot stage ${from}: not found`)
    fs.cpSync(from, path.join(STAGED, item), { recursive: true, filter: (src) => !src.includes(`${path.sep}target`) })
  }
  // The workspace manifest, with only the members the addon needs.
  const manifest = fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8')
  const members = /^members\s*=.*$/m
  if (!members.test(manifest)) fail('Cargo.toml has no members line to rewrite')
  const staged = manifest
    .replace(members, 'members = ["core", "tests/support", "bindings/node"]')
    .replace(/^default-members\s*=.*$/m, 'default-members = ["bindings/node"]')
  fs.writeFileSync(path.join(STAGED, 'Cargo.toml'), staged)
}

const mode = process.argv[2]
if (mode === '--stage-sources') {
  if (!fs.existsSync(ADDON)) fail(`${ADDON} is missing: run \`npm run build\` before npm pack`)
  stageSources()
} else if (mode === '--unstage-sources') {
  fs.rmSync(STAGED, { recursive: true, force: true })
} else if (mode === '--if-needed') {
  if (process.env.UML_NODE_ADDON !== undefined) process.exit(0)
  if (fs.existsSync(ADDON)) {
    const why = loadError(ADDON)
    if (why === null) process.exit(0)
    // A release tarball (scripts/package) carries no sources: say why its addon does not fit.
    if (sources() === null) {
      fail(
        `the prebuilt addon ${ADDON} does not load here (${why.trim()}). It is built for x86-64 ` +
          'Linux with glibc 2.34 or newer; elsewhere install uml from its repository, which builds the addon.',
      )
    }
  }
  build()
} else if (mode === undefined) {
  build()
} else {
  fail(`unknown option ${mode} (expected --if-needed, --stage-sources or --unstage-sources)`)
}
