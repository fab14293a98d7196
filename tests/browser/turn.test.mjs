// Media through a TURN relay: Debian's coturn on loopback with the shipped
// deploy/coturn/turnserver.conf, `lipsync serve` configured with it (webrtc.turn_servers and a
// shared secret), and the demo page in headless Chromium told to use relays only (?relay=1,
// iceTransportPolicy "relay"): the browser can reach the server through the relay and no other
// way. Frames must arrive at 25 fps; the relay's added latency is a figure, against a direct
// viewer of the same session measured in the same run. Env: LIPSYNC_BINARY.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, figure, startLipsync, waitFor } from './common.mjs';

const BINARY = process.env.LIPSYNC_BINARY;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOKEN = 'turn-test-token';
const SECRET = 'turn-test-secret';
// run.sh gives the test a network namespace of its own when it can: these ports are then free.
const TURN_PORT = 34780 + Math.floor(Math.random() * 1000);
const RELAY_MIN = 45000 + Math.floor(Math.random() * 100) * 100;

let dir;
let turn;
let turnLog = '';
let server;
let base;
let browser;

// What a watch() measured, without its frames (for a failure's message).
function brief({ frames, ...rest }) {
  return JSON.stringify({ ...rest, presented: frames.length });
}

function stop(child, signal) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const t = setTimeout(() => { child.kill('SIGKILL'); resolve('killed'); }, 15000);
    child.on('exit', (code) => { clearTimeout(t); resolve(code); });
    child.kill(signal);
  });
}

before(async () => {
  assert.ok(BINARY, 'LIPSYNC_BINARY is not set');
  dir = mkdtempSync(join(tmpdir(), 'lipsync-turn-'));
  // coturn as shipped, with what a loopback test needs on top: its addresses, free ports, and
  // loopback peers (the lipsync server is one; production configs keep them denied).
  turn = spawn('turnserver', [
    '-c', join(ROOT, 'deploy/coturn/turnserver.conf'), `--static-auth-secret=${SECRET}`,
    '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${TURN_PORT}`,
    `--min-port=${RELAY_MIN}`, `--max-port=${RELAY_MIN + 99}`, '--allow-loopback-peers',
    `--pidfile=${join(dir, 'turnserver.pid')}`, `--db=${join(dir, 'turndb')}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  turn.stdout.on('data', (d) => { turnLog += d; });
  turn.stderr.on('data', (d) => { turnLog += d; });
  assert.ok(await waitFor(() => turnLog.includes('Total General servers'), 10000),
            `coturn did not start:\n${turnLog}`);

  writeFileSync(join(dir, 'turn_secret'), `${SECRET}\n`);
  const { child, ports } = await startLipsync(BINARY, dir, [
    'server:', `  api_token: ${TOKEN}`, '  drain_timeout_s: 1',
    'webrtc:', '  frame_marker: true', '  ice_timeout_ms: 3000',
    `  turn_servers: ["turn:127.0.0.1:${TURN_PORT}?transport=udp"]`,
    `  turn_secret_file: ${join(dir, 'turn_secret')}`,
  ]);
  server = child;
  base = `http://127.0.0.1:${ports.http_port}`;
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

after(async () => {
  if (browser) await browser.close();
  if (server) assert.equal(await stop(server, 'SIGTERM'), 0, 'lipsync serve did not exit 0');
  if (turn) await stop(turn, 'SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Opens the demo page (`query` added), connects, records for `seconds`: frames per second as the
// browser received and decoded them, each presented frame's delay from the server's send (the bar code the server
// draws with webrtc.frame_marker), and the ICE candidate pair in use.
async function watch(query, seconds) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(`${base}/?token=${TOKEN}${query}`);
  await page.evaluate(() => window.lipsync.connect());
  const connected = await waitFor(() => page.evaluate(() =>
    window.lipsync.pc !== null && window.lipsync.pc.connectionState === 'connected' &&
    document.getElementById('video').videoWidth > 0), 20000);
  assert.ok(connected, `the page (${query}) did not connect: ` +
            JSON.stringify(await page.evaluate(() => window.lipsync.errors)));
  await new Promise((r) => setTimeout(r, 1000));  // past the first key frame's burst
  const out = await page.evaluate(async (ms) => {
    const inboundVideo = async () => {
      let found = null;
      (await window.lipsync.pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') found = s;
      });
      return found;
    };
    const start = await inboundVideo();
    const video = document.getElementById('video');
    const canvas = document.createElement('canvas');
    canvas.width = 24 * 16;
    canvas.height = 16;
    const g = canvas.getContext('2d', { willReadFrequently: true });
    const frames = [];  // presented frames: their delay from the server's send
    const onFrame = (now, meta) => {
      g.drawImage(video, 0, 0, 24 * 16, 16, 0, 0, 24 * 16, 16);
      const strip = g.getImageData(0, 0, 24 * 16, 16).data;
      let code = 0;
      for (let bit = 0; bit < 24; bit++) {
        code = code * 2 + (strip[(8 * 24 * 16 + bit * 16 + 8) * 4 + 1] > 128 ? 1 : 0);
      }
      const wall = performance.timeOrigin + meta.presentationTime;
      const sent = wall - ((wall - code) % 16777216 + 16777216) % 16777216;
      frames.push({ delay: wall - sent });
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    await new Promise((r) => setTimeout(r, ms));
    // The pair ICE chose, and each end's kind of candidate.
    const stats = await window.lipsync.pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    const localCandidate = pair && stats.get(pair.localCandidateId);
    const end = await inboundVideo();
    const span = (end.timestamp - start.timestamp) / 1000;
    return { frames, session: window.lipsync.session,
             local: localCandidate && localCandidate.candidateType,
             local_port: localCandidate && localCandidate.port,
             local_url: localCandidate && localCandidate.url,
             remote: pair && stats.get(pair.remoteCandidateId).candidateType,
             received: pair && pair.bytesReceived,
             // Frames per second as they arrived and were decoded (what the network and the
             // relay deliver; the headless page's own presentation rate varies with the load).
             received_fps: (end.framesReceived - start.framesReceived) / span,
             decoded_fps: (end.framesDecoded - start.framesDecoded) / span,
             lost: end.packetsLost - start.packetsLost,
             iceServers: window.lipsync.iceServers };
  }, seconds * 1000);
  const delays = out.frames.map((x) => x.delay).sort((a, b) => a - b);
  // Its session (and so its viewer) ends now, not when ICE notices the page is gone: the next
  // watch() has the machine to itself.
  await page.evaluate(async (token) => {
    await fetch(`/v1/sessions/${window.lipsync.session}`,
                { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
  }, TOKEN);
  await page.close();
  return { ...out, delay: delays[Math.floor(delays.length / 2)] };
}

test('a viewer allowed only relays watches through coturn at 25 fps', async () => {
  // Direct viewers before and after the relayed one: a page's delay depends on its place in the
  // run (the later ones were 1-70 ms slower or faster), so the relay's cost is measured against
  // both.
  const before = await watch('', 4);
  const relayed = await watch('&relay=1', 6);
  const direct = await watch('', 4);
  // The page got the server's TURN server with credentials for its session.
  assert.equal(relayed.iceServers.length, 1);
  assert.deepEqual(relayed.iceServers[0].urls, [`turn:127.0.0.1:${TURN_PORT}?transport=udp`]);
  assert.ok(relayed.iceServers[0].username.endsWith(`:${relayed.session}`));
  // Every byte came through the relay: the browser's end of the pair is coturn's. (So coturn
  // took the time-limited credentials the server made: the page had no others.)
  assert.equal(relayed.local, 'relay', brief(relayed));
  assert.ok(relayed.received > 100000, `only ${relayed.received} bytes through the relay`);
  assert.ok(relayed.received_fps > 23 && relayed.received_fps < 27, brief(relayed));
  assert.ok(relayed.decoded_fps > 23, brief(relayed));
  // Direct: the browser's own address (host, or as coturn saw it: srflx), not the relay.
  assert.notEqual(before.local, 'relay', brief(before));
  assert.notEqual(direct.local, 'relay', brief(direct));
  const directDelay = (before.delay + direct.delay) / 2;
  figure('turn_relayed_received_fps', relayed.received_fps.toFixed(2));
  figure('turn_relayed_decoded_fps', relayed.decoded_fps.toFixed(2));
  figure('turn_relayed_packets_lost', relayed.lost);
  figure('turn_relayed_median_delay_ms', relayed.delay.toFixed(1));
  figure('direct_median_delay_ms', directDelay.toFixed(1));
  figure('turn_added_delay_ms', (relayed.delay - directDelay).toFixed(1));
});
