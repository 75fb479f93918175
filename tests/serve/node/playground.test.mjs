// The chat playground (`GET /` of uml serve) in a real headless browser (Debian's chromium,
// driven by playwright-core): the page loads and lists the models, a message streams a reply
// with its tokens/s, and Stop cancels a running reply (the server's slot is freed: /metrics).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MODELS = process.env.UML_MODELS ?? path.join(REPO, 'models');
const UML = path.join(REPO, 'target/release/uml');
const CHROMIUM = process.env.UML_CHROMIUM ?? '/usr/bin/chromium';

let server;
let base;
let browser;

before(async () => {
  assert.ok(existsSync(UML), `${UML} is missing: cargo build --release -p uml-cli`);
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (scripts/bootstrap)`);
  server = spawn(UML, [
    'serve', '--port', '0', '--ctx', '1024', '--threads', '2',
    '--model', `smollm2=${path.join(MODELS, 'SmolLM2-135M-Instruct.Q4_1.gguf')}`,
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).once('line', resolve);
    server.once('exit', (code) => reject(new Error(`uml serve exited with ${code}`)));
  });
  base = first.replace('uml serve: listening on ', '').trim();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
});

async function running() {
  const metrics = await (await fetch(`${base}/metrics`)).text();
  return Number(/uml_running\{model="smollm2"\} (\d+)/.exec(metrics)?.[1] ?? 0);
}

test('the page streams a reply, and Stop cancels one', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/');
  await page.waitForFunction(() => document.querySelector('#model').options.length > 0);
  assert.equal(await page.inputValue('#model'), 'smollm2');

  await page.fill('#temperature', '0');
  await page.fill('#max-tokens', '16');
  await page.fill('#prompt', 'What is the capital of France?');
  await page.click('#send');
  await page.waitForFunction(() => /tokens\/s/.test(document.querySelector('#stats').textContent));
  const reply = await page.textContent('.assistant .text');
  assert.ok(reply.length > 0, 'an empty reply');
  assert.match(await page.textContent('#stats'), /^16 tokens, [\d.]+ tokens\/s/);

  // A long reply, stopped once it streams.
  await page.fill('#max-tokens', '1000');
  await page.fill('#prompt', 'Count from 1 to 1000, one number per line.');
  await page.click('#send');
  await page.waitForFunction(() => {
    const texts = document.querySelectorAll('.assistant .text');
    return texts.length === 2 && texts[1].textContent.length > 10;
  });
  assert.equal(await running(), 1);
  await page.click('#stop');
  await page.waitForFunction(() => document.querySelector('#stats').textContent === 'stopped');
  const deadline = Date.now() + 5000;
  while ((await running()) !== 0) {
    assert.ok(Date.now() < deadline, 'the stopped generation still runs');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await page.isDisabled('#send'), false);
  assert.deepEqual(errors, []);
});
