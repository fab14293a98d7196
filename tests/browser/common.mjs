// What the browser tests share: Chromium's flags, a figure line, polling, and `lipsync serve`
// started on loopback ports with a config.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream', '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--mute-audio',
];

// A measured figure, as a line the test's output keeps ("figure: NAME VALUE").
export function figure(name, value) {
  console.log(`figure: ${name} ${value}`);
}

// Polls `predicate` every `stepMs` until it holds (true) or `timeoutMs` passes (false).
export async function waitFor(predicate, timeoutMs, stepMs = 100) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

// Starts `binary serve` with `configLines` written to DIR/config.yaml, HTTP and gRPC on free
// loopback ports; resolves to { child, ports } once it prints its ports.
export async function startLipsync(binary, dir, configLines) {
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [...configLines, ''].join('\n'));
  const child = spawn(binary, ['serve', '--config', config, '--http', '127.0.0.1:0',
                               '--grpc', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.on('data', (d) => process.stderr.write(d));
  const ports = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line));
    });
    child.on('exit', (code) => reject(new Error(`lipsync serve exited with ${code}`)));
  });
  return { child, ports };
}
