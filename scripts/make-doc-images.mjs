// Makes README's two images with headless Chromium (see scripts/make-doc-images, which runs it):
//   node make-doc-images.mjs LIPSYNC_BINARY FRAMES_DIR WORK_DIR OUT_DIR
// demo-frame.png: the rendered frame (FRAMES_DIR/%05d.png) with the widest-open mouth, 640 px
// wide. demo-page.png: the demo page of `lipsync serve`, mid-speech after pressing Say.
import { createRequire } from 'node:module';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHROMIUM_ARGS, startLipsync, waitFor } from '../tests/browser/common.mjs';

// playwright-core lives in the browser tests' node_modules.
const require = createRequire(new URL('../tests/browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [binary, framesDir, workDir, outDir] = process.argv.slice(2);

// Page-side helper: how many dark pixels (luma < 60) the demo mouth region of a 1280 x 720
// picture (a video element or an image) holds; the mouth is a dark ellipse that opens with
// loudness, under the nose at about (634, 418).
function mouthDarkness(source) {
  const box = { x: 580, y: 380, w: 110, h: 90 };
  const c = new OffscreenCanvas(box.w, box.h);
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(source, box.x, box.y, box.w, box.h, 0, 0, box.w, box.h);
  const px = g.getImageData(0, 0, box.w, box.h).data;
  let dark = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i] * 0.299 + px[i + 1] * 0.587 + px[i + 2] * 0.114 < 60) dark++;
  }
  return dark;
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
let server;
try {
  // 1. The still: score every frame by its mouth's darkness, keep the most open one.
  const page = await browser.newPage();
  await page.setContent('<body></body>');
  await page.evaluate(`window.mouthDarkness = ${mouthDarkness}`);
  const decode = 'async (b64) => createImageBitmap(await (await fetch("data:image/png;base64," + b64)).blob())';
  let best = { dark: -1 };
  for (const name of readdirSync(framesDir).filter((f) => f.endsWith('.png')).sort()) {
    const b64 = readFileSync(join(framesDir, name)).toString('base64');
    const dark = await page.evaluate(`(${decode})(${JSON.stringify(b64)}).then(mouthDarkness)`);
    if (dark > best.dark) best = { dark, name, b64 };
  }
  // Scaled to 640 px wide on a canvas (high-quality smoothing), written as PNG.
  const png = await page.evaluate(`(${decode})(${JSON.stringify(best.b64)}).then((img) => {
    const c = document.createElement('canvas');
    c.width = 640; c.height = Math.round(img.height * 640 / img.width);
    const g = c.getContext('2d');
    g.imageSmoothingQuality = 'high';
    g.drawImage(img, 0, 0, c.width, c.height);
    return c.toDataURL('image/png').split(',')[1];
  })`);
  writeFileSync(join(outDir, 'demo-frame.png'), Buffer.from(png, 'base64'));
  console.log(`demo-frame.png: frame ${best.name} (${best.dark} dark mouth pixels)`);
  await page.close();

  // 2. The page: `lipsync serve` on loopback ports, the demo page connected and playing.
  // A high video bitrate (loopback): clean frames, which also keep the PNG small.
  server = await startLipsync(binary, workDir, ['server:', '  drain_timeout_s: 1',
                                                'webrtc:', '  video_bitrate_kbps: 8000']);
  // A 1100 x 800 window drawn at 0.8 scale (880 px wide): the PNG stays small (the decoded
  // video's noise compresses poorly) and the text sharp.
  const view = await browser.newPage({ viewport: { width: 1100, height: 800 },
                                       deviceScaleFactor: 0.8 });
  await view.addInitScript(`window.mouthDarkness = ${mouthDarkness}`);
  view.on('pageerror', (e) => console.error('page error:', e.message));
  await view.goto(`http://127.0.0.1:${server.ports.http_port}/`);
  const playing = await waitFor(() => view.evaluate(() => window.lipsync.pc?.connectionState ===
      'connected' && document.getElementById('video').currentTime > 3), 30000);
  if (!playing) throw new Error('the demo page did not play: ' +
                                JSON.stringify(await view.evaluate(() => window.lipsync.errors)));
  // Type a sentence and press Say, as a visitor would; wait until it plays, then ~1 s more.
  await view.fill('#text', 'Hello! I am a live avatar, and I move my mouth when I speak.');
  await view.click('#say');
  const speaking = await waitFor(() => view.evaluate(() =>
      window.lipsync.events.some((e) => e.type === 'playback_started')), 15000);
  if (!speaking) throw new Error('Say did not start playing');
  await view.waitForTimeout(1000);
  // Freeze the video on the next frame whose mouth is clearly open, so the screenshot shows it.
  const dark = await view.evaluate(() => new Promise((resolve) => {
    const video = document.getElementById('video');
    const end = performance.now() + 3000;
    const onFrame = () => {
      const dark = window.mouthDarkness(video);
      if (dark > 2400 || performance.now() > end) { video.pause(); resolve(dark); }
      else video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }));
  await view.waitForTimeout(300);  // let the figures and event log catch up
  // The whole page: the event log (playback_started) reaches just below 800 px.
  await view.screenshot({ path: join(outDir, 'demo-page.png'), fullPage: true });
  console.log(`demo-page.png: ${dark} dark mouth pixels in the frozen frame`);
} finally {
  await browser.close();
  if (server) {
    // Drains: the page's session ends within 1 s, then the server exits.
    if (server.child.exitCode === null) {
      await new Promise((r) => { server.child.on('exit', r); server.child.kill('SIGTERM'); });
    }
  }
}
