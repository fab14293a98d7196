// The WHEP example page in headless Chromium (Debian's chromium, driven by the browser tests'
// playwright-core): node browser_check.mjs PAGE_URL SPEECH_WAV, with the page's ?server= in
// PAGE_URL. Clicks Start, checks that video frames arrive at the session's 25 a second and that
// the events show up: the page's own say and interrupt, speech sent by another client (this
// script, as a voice agent would), and the end of the session on Stop.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CHROMIUM_ARGS, waitFor } from '../../tests/browser/common.mjs';

const { chromium } = createRequire(new URL('../../tests/browser/', import.meta.url))(
  'playwright-core');
const [pageUrl, speech] = process.argv.slice(2);
const server = new URL(pageUrl).searchParams.get('server');

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(pageUrl);
  const error = () => page.textContent('#error');
  // The page's event log, as shown.
  const shown = (pattern) => waitFor(async () => pattern.test(await page.textContent('#events')),
                                     15000);
  const decoded = () => page.evaluate(async () => {
    let frames = 0;
    (await window.app.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded;
    });
    return frames;
  });

  await page.click('#start');
  assert.ok(await waitFor(() => page.evaluate(() =>
    window.app.pc?.connectionState === 'connected' &&
    document.getElementById('video').videoWidth > 0), 20000),
  `the page did not connect: ${await error()}`);
  assert.equal(await page.evaluate(() => document.getElementById('video').videoWidth), 1280);
  assert.ok(await shown(/viewer_joined \(1 watching\)/), 'no viewer_joined event shown');

  // Video: the session's frames, 25 a second (software decoding on a busy machine: at least 15).
  const before = await decoded();
  await new Promise((r) => setTimeout(r, 2000));
  const perSecond = (await decoded() - before) / 2;
  console.log(`video: ${perSecond} frames a second decoded`);
  assert.ok(perSecond >= 15 && perSecond <= 30, `${perSecond} frames a second`);

  // The page's Say and Interrupt: utterance 0 starts, and is cut.
  await page.fill('#text', 'I am a live avatar in a page of your own, and I will be interrupted ' +
                           'long before the end of this sentence.');
  await page.click('#say');
  assert.ok(await shown(/playback_started #0/), `say: ${await error()}`);
  await new Promise((r) => setTimeout(r, 1000));
  await page.click('#interrupt');
  assert.ok(await shown(/playback_finished #0 heard [0-9.]+ s \(interrupted\)/),
            `interrupt: ${await error()}`);

  // Speech from another client (no Origin header: not a page, CORS does not apply) shows up too.
  const session = await page.evaluate(() => window.app.session);
  const res = await fetch(`${server}/v1/sessions/${session}/speech`, {
    method: 'POST', headers: { 'Content-Type': 'audio/wav' }, body: readFileSync(speech) });
  assert.equal(res.status, 200, await res.text());
  assert.ok(await shown(/playback_started #1/), 'the uploaded speech did not start');

  // Stop: the viewer, then the session; its last event is shown.
  await page.click('#stop');
  assert.ok(await shown(/session_ended \(deleted\)/), `stop: ${await error()}`);
  assert.equal(await error(), '');
  const events = await page.evaluate(() => window.app.events);
  assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
  console.log(await page.textContent('#events'));
} finally {
  await browser.close();
}
