// Drives the chat demo page (src/ChatBackend/wwwroot) through the gateway in headless Chromium, as a person would:
// two tabs join a room, one's message reaches the other, "Send a burst" meets the demo policy's rate limit, and a name
// gets a demo token whose identity the backend echoes in its welcome. One PASS/FAIL line per check; exit 1 on any FAIL.
//   node check.mjs BASE_URL...     e.g. http://127.0.0.1:18602/ https://127.0.0.1:18603/ (run.sh starts the demo)
// Every wait has a timeout: a page that never shows what it should is a FAIL, not a hang.
import puppeteer from 'puppeteer-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const out = process.env.DEMO_BROWSER_OUT || '.demo/browser';
const bases = process.argv.slice(2);
if (bases.length === 0) {
  console.error('usage: node check.mjs BASE_URL...');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

// What config/demo.json sets: PerConnection Messages Burst 10 (5/s), Action Close; the page sends 30 at once.
const RateBurst = 10;
const BurstSize = 30;
const Wait = { page: 15_000, connect: 10_000, message: 5_000, close: 10_000, quiet: 1_500 };

let failures = 0;
function report(ok, name, detail) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
  if (!ok) failures++;
}

// Runs one check; its function returns the detail to print or throws what went wrong.
async function check(name, fn) {
  try {
    report(true, name, await fn());
    return true;
  } catch (error) {
    report(false, name, String(error && error.message || error).split('\n')[0]);
    return false;
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// The page's log as text, one entry per line, without the time stamp.
function logLines(page) {
  return page.$$eval('#log li', (items) => items.map((item) => ({ kind: item.className, text: item.lastChild ? item.lastChild.textContent : '' })));
}

async function lastLines(page, count = 3) {
  return (await logLines(page)).slice(-count).map((line) => line.text).join(' | ');
}

// Waits (bounded) until a log line matches; returns its text. On timeout the error quotes the log's last lines.
async function waitForLog(page, pattern, timeout) {
  try {
    const handle = await page.waitForFunction((source, flags) => {
      const re = new RegExp(source, flags);
      const hit = [...document.querySelectorAll('#log li')].map((item) => item.lastChild ? item.lastChild.textContent : '').find((text) => re.test(text));
      return hit === undefined ? false : hit;
    }, { timeout, polling: 100 }, pattern.source, pattern.flags);
    return await handle.jsonValue();
  } catch (error) {
    if (error.name === 'TimeoutError') {
      throw new Error(`no log line /${pattern.source}/ within ${timeout} ms; last: ${await lastLines(page)}`);
    }
    throw error;
  }
}

async function status(page) {
  return page.$eval('#status', (element) => element.textContent);
}

async function waitForStatus(page, wanted, timeout) {
  try {
    await page.waitForFunction((value) => document.getElementById('status').textContent === value, { timeout, polling: 100 }, wanted);
  } catch (error) {
    if (error.name === 'TimeoutError') {
      throw new Error(`status "${await status(page)}", not "${wanted}", after ${timeout} ms; last: ${await lastLines(page)}`);
    }
    throw error;
  }
}

async function openPage(browser, base, errors) {
  const page = await browser.newPage();
  page.setDefaultTimeout(Wait.page);
  page.on('pageerror', (error) => errors.push(String(error.message || error)));
  const response = await page.goto(base, { waitUntil: 'load', timeout: Wait.page });
  // 304: a later tab revalidates the page the first one cached.
  expect(response && (response.ok() || response.status() === 304), `GET ${base}: ${response ? response.status() : 'no response'}`);
  return page;
}

// A real mouse click, in the foreground: Chromium runs no animation frames in a background tab, and Puppeteer's click
// waits for one, so a click there would hang until the protocol timeout.
async function press(page, selector) {
  await page.bringToFront();
  await page.click(selector);
}

async function fill(page, selector, value) {
  await page.$eval(selector, (element, text) => { element.value = text; }, value);
}

// Fills room and name and presses Connect, then waits for the welcome; returns the welcome line.
async function join(page, room, name) {
  await fill(page, '#room', room);
  await fill(page, '#name', name);
  await press(page, '#connect');
  await waitForStatus(page, 'connected', Wait.connect);
  return waitForLog(page, /^welcome from backend /, Wait.connect);
}

// In the foreground, like a click: a background tab paints no frame to capture, and the capture waits for one.
async function screenshot(page, file) {
  await page.bringToFront().catch(() => {});
  await page.screenshot({ path: path.join(out, file), fullPage: true, timeout: Wait.page }).catch(() => {});
}

async function run(base) {
  const scheme = base.startsWith('https:') ? 'wss' : 'ws';
  const tag = (name) => `${scheme}: ${name}`;
  const args = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check'];
  // The demo serves wss with a certificate the gateway made for itself (no Tls:Certificates in demo.json).
  if (scheme === 'wss') args.push('--ignore-certificate-errors');
  const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args, timeout: 30_000, protocolTimeout: 30_000 });
  const errors = [];
  const room = `browser-${scheme}-${Date.now().toString(36)}`;
  try {
    let a;
    let b;
    const loaded = await check(tag('the page loads through the gateway'), async () => {
      a = await openPage(browser, base, errors);
      b = await openPage(browser, base, errors);
      const title = await a.title();
      expect(title === 'Chat backend', `title "${title}"`);
      expect(await status(a) === 'disconnected', `status "${await status(a)}"`);
      const protocol = await a.evaluate(() => performance.getEntriesByType('navigation')[0]?.nextHopProtocol || '?');
      return `${base} over ${protocol}, title "${title}"`;
    });
    if (!loaded) return;

    let backendA = '';
    const joined = await check(tag(`two tabs join room "${room}" (anonymous)`), async () => {
      const welcomeA = await join(a, room, '');
      const welcomeB = await join(b, room, '');
      backendA = await a.$eval('#backend', (element) => element.textContent);
      const backendB = await b.$eval('#backend', (element) => element.textContent);
      expect(backendA === backendB, `tab A on ${backendA}, tab B on ${backendB}: one room must be on one backend`);
      expect(/\(anonymous\)/.test(welcomeA) && /\(anonymous\)/.test(welcomeB), `welcome not anonymous: "${welcomeB}"`);
      expect(/\(2 members\)/.test(welcomeB), `second tab's welcome: "${welcomeB}"`);
      const connected = await waitForLog(b, /^connected/, Wait.connect);
      expect(/subprotocol chat\.v2/.test(connected), `"${connected}": the policy's first subprotocol is chat.v2`);
      return `both on ${backendA}; tab B: "${welcomeB}", "${connected}"`;
    });
    if (!joined) return;

    await check(tag('a message typed in tab A reaches tab B'), async () => {
      const text = `hello from tab A ${Date.now().toString(36)}`;
      await fill(a, '#message', text);
      await press(a, '#send');
      const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      await waitForLog(b, new RegExp(`^${escaped}$`), Wait.message);
      await waitForLog(a, new RegExp(`^${escaped}$`), Wait.message);
      return `"${text}" shown in tab B (and echoed to tab A)`;
    });

    await check(tag('"Send a burst" in tab A meets the rate limit: close 1008 "rate limit exceeded"'), async () => {
      // As a person would, a moment after the last message: the bucket (5/s) is full again, all 10 of the burst are there.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await press(a, '#burst');
      const closed = await waitForLog(a, /^closed: code /, Wait.close);
      // 1006 here means the page never got the gateway's Close: the connection ended under it (seen as a TCP reset).
      expect(/^closed: code 1008 "rate limit exceeded"/.test(closed), `tab A shows "${closed}", not 1008 "rate limit exceeded"`);
      const summary = await waitForLog(a, /^burst: sent \d+, /, Wait.message);
      expect(new RegExp(`^burst: sent ${BurstSize}, \\d+ echoed`).test(summary), `tab A shows "${summary}"`);
      await waitForStatus(a, 'disconnected', Wait.message);
      return `tab A: "${closed}"; "${summary.replace(/ \(other tabs.*$/, '')}"`;
    });

    await check(tag(`tab B sees the burst's first ${RateBurst} (at most the refill more, never all ${BurstSize}) and stays connected`), async () => {
      // The first RateBurst passed the gateway at once; wait for them, then for quiet (the refill is 5/s).
      await b.waitForFunction((n) => [...document.querySelectorAll('#log li')].filter((item) => /^burst#/.test(item.lastChild.textContent)).length >= n,
        { timeout: Wait.message, polling: 100 }, RateBurst).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, Wait.quiet));
      const seen = (await logLines(b)).map((line) => line.text).filter((text) => /^burst#/.test(text));
      const numbers = seen.map((text) => Number(/ (\d+)\/\d+$/.exec(text)?.[1]));
      expect(seen.length >= RateBurst && seen.length < BurstSize, `tab B saw ${seen.length} burst messages`);
      expect(numbers.every((n, i) => n === i + 1), `out of order or with gaps: ${numbers.join(',')}`);
      expect(await status(b) === 'connected', `tab B is "${await status(b)}"`);
      return `tab B saw ${seen.length} of ${BurstSize} (1..${seen.length} in order) and is still connected`;
    });
    await screenshot(a, `${scheme}-tab-a.png`);
    await screenshot(b, `${scheme}-tab-b.png`);

    await check(tag('a name signs in with a demo token and the backend greets the user'), async () => {
      const name = `alice-${scheme}`;
      const c = await openPage(browser, base, errors);
      const welcome = await join(c, room, name);
      await waitForLog(c, new RegExp(`^got a demo token for "${name}", valid \\d+ s`), Wait.message);
      // The backend writes "user" into its welcome only from X-User-Id, which the gateway set from the token's sub.
      expect(welcome.includes(`as "${name}"`), `welcome "${welcome}"`);
      await screenshot(c, `${scheme}-tab-c.png`);
      await press(c, '#connect'); // now Disconnect
      const closed = await waitForLog(c, /^closed: code /, Wait.close);
      expect(/^closed: code 1000 "bye"/.test(closed), `disconnect shows "${closed}"`);
      return `"${welcome}"; then "${closed}"`;
    });

    await check(tag('no script errors in the page'), async () => {
      expect(errors.length === 0, errors.join(' | '));
      return 'none';
    });
  } finally {
    await browser.close().catch(() => {});
  }
}

for (const base of bases) {
  try {
    await run(base);
  } catch (error) {
    report(false, `${base}: the browser run`, String(error && error.message || error).split('\n')[0]);
  }
}
console.log(failures === 0 ? 'demo-browser: all checks passed' : `demo-browser: ${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
