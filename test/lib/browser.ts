import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * The live-captions page in real headless Chromium (Debian's, driven by playwright-core: no browser
 * download). Chromium's fake microphone plays a WAV file once.
 */

// `npm test` installs Debian's chromium (scripts/setup.sh --test); a missing browser is a failure, not a skip.
export const CHROMIUM = process.env.CALLSCRIBE_CHROMIUM ?? '/usr/bin/chromium';

/** Throws, saying how to install it, when Debian's Chromium is not there. */
export function requireChromium(): void {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium is missing at ${CHROMIUM}: install Debian's package (apt-get install -y chromium; npm test does it through scripts/setup.sh --test)`);
  }
}

/**
 * `input` as the WAV Chromium's fake capture plays, written to `out`: it reads 16-bit PCM WAV, and 48 kHz
 * stereo is what its audio path expects natively.
 */
export function fakeMicWav(input: string, out: string): string {
  const ff = spawnSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', input, '-ar', '48000', '-ac', '2',
    '-c:a', 'pcm_s16le', '-fflags', '+bitexact', '-map_metadata', '-1', out]);
  if (ff.status !== 0) throw new Error(`ffmpeg failed: ${ff.stderr}`);
  return out;
}

/** Headless Chromium whose microphone (granted without asking) plays `fakeWav` once, then silence. */
export function launchWithFakeMic(fakeWav: string): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      // %noloop: the call plays once, then silence, so the transcript is the file's and nothing more.
      `--use-file-for-fake-audio-capture=${fakeWav}%noloop`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/**
 * The page at `origin/query` in a fresh context (its own permissions and storage) with the microphone
 * granted to the gateway's origin; the context goes to `contexts` (to close), page errors and console
 * errors to `pageErrors`.
 */
export async function openPage(browser: Browser, origin: string, query: string, contexts: BrowserContext[], pageErrors: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  contexts.push(context);
  await context.grantPermissions(['microphone'], { origin });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  await page.goto(`${origin}/${query}`);
  return page;
}

/** The final captions, in page order. */
export const finalText = (page: Page): Promise<string> => page.$$eval('#captions .segment.final .text', (els) => els.map((e) => e.textContent ?? '').join(' ').trim());
export const FINAL_WITH_WORDS = '#captions .segment.final:not(.empty)';
