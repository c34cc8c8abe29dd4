// Drives the server-rendered status page in headless Debian Chromium for the
// Rust black-box tests, which spawn it as:
//
//   node tests/browser/status-page.mjs --url <page> --screenshot <png>
//        --expect '{"shop":"healthy"}' --change shop=unhealthy --timeout-ms 10000
//
// 1. opens the page and checks every entity of --expect: the element with
//    data-entity="<id>" must carry data-status="<status>";
// 2. waits for <html data-live="connected"> (the page's EventSource is open);
// 3. prints READY on stdout: the caller then makes --change happen;
// 4. waits for that entity's data-status to become the wanted status with no
//    navigation or reload (framenavigated on the main frame, window.__marker);
// 5. saves a full-page screenshot and prints OK.
// Any failure: the reason on stderr, the screenshot if possible, exit code 1.
// Requires `scripts/install-test-tools` (chromium, playwright-core).
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const STATUSES = ['healthy', 'degraded', 'unhealthy', 'unknown'];

class Failure extends Error {}

function fail(message) {
    throw new Failure(message);
}

function parseCli() {
    const { values } = parseArgs({
        options: {
            url: { type: 'string' },
            screenshot: { type: 'string' },
            expect: { type: 'string', default: '{}' },
            change: { type: 'string' },
            'timeout-ms': { type: 'string', default: '10000' },
        },
        strict: true,
    });
    for (const name of ['url', 'screenshot', 'change']) {
        if (!values[name]) fail(`missing --${name}`);
    }
    let expect;
    try {
        expect = JSON.parse(values.expect);
    } catch (e) {
        fail(`--expect is not JSON: ${e.message}`);
    }
    if (expect === null || typeof expect !== 'object' || Array.isArray(expect)) {
        fail('--expect must be a JSON object mapping entity id to status');
    }
    for (const [entity, status] of Object.entries(expect)) {
        if (!STATUSES.includes(status)) fail(`--expect ${entity}: unknown status ${JSON.stringify(status)}`);
    }
    const eq = values.change.lastIndexOf('=');
    if (eq <= 0) fail(`--change must be <entity>=<status>, got ${JSON.stringify(values.change)}`);
    const change = { entity: values.change.slice(0, eq), status: values.change.slice(eq + 1) };
    if (!STATUSES.includes(change.status)) fail(`--change: unknown status ${JSON.stringify(change.status)}`);
    const timeout = Number(values['timeout-ms']);
    if (!Number.isInteger(timeout) || timeout <= 0) fail(`--timeout-ms must be a positive integer`);
    return { url: values.url, screenshot: values.screenshot, expect, change, timeout };
}

// Every data-entity element's status, in page order: { id: status }.
function readStatuses(page) {
    return page.evaluate(() => {
        const found = {};
        for (const el of document.querySelectorAll('[data-entity]')) {
            found[el.getAttribute('data-entity')] = el.getAttribute('data-status');
        }
        return found;
    });
}

function writeLine(stream, line) {
    return new Promise((resolve, reject) => stream.write(`${line}\n`, (e) => (e ? reject(e) : resolve())));
}

async function main() {
    const args = parseCli();
    const browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--no-sandbox'],
        timeout: Math.max(30000, args.timeout),
    });
    const diagnostics = [];
    let page;
    try {
        page = await browser.newPage();
        page.setDefaultTimeout(args.timeout);
        page.on('pageerror', (e) => diagnostics.push(`page error: ${e.message}`));
        page.on('console', (m) => {
            // 'Failed to load resource' names no URL; the response listener does.
            if ((m.type() === 'error' || m.type() === 'warning') && !m.text().startsWith('Failed to load resource')) {
                diagnostics.push(`console ${m.type()}: ${m.text()}`);
            }
        });
        page.on('response', (r) => {
            if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) {
                diagnostics.push(`response: ${r.status()} for ${r.request().method()} ${r.url()}`);
            }
        });
        page.on('requestfailed', (r) =>
            diagnostics.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));

        const response = await page.goto(args.url, { waitUntil: 'load', timeout: args.timeout });
        if (!response) fail(`no response for ${args.url}`);
        if (!response.ok()) fail(`GET ${args.url} answered ${response.status()} ${response.statusText()}`);

        // From here on the page must never navigate or reload.
        let navigatedTo = null;
        let onNavigated;
        const navigated = new Promise((resolve) => (onNavigated = resolve));
        page.on('framenavigated', (frame) => {
            if (frame === page.mainFrame() && navigatedTo === null) {
                navigatedTo = frame.url();
                onNavigated();
            }
        });
        await page.evaluate(() => {
            window.__marker = 1;
        });
        // Rejects once the main frame navigates; marked handled so that a
        // rejection after its race has settled does not crash the process.
        const noNavigation = (what) => {
            const p = navigated.then(() =>
                fail(`the page navigated to ${navigatedTo} while ${what}; it must update in place`));
            p.catch(() => {});
            return p;
        };

        const found = await readStatuses(page);
        const wrong = Object.entries(args.expect).filter(([id, status]) => found[id] !== status);
        if (wrong.length > 0) {
            const lines = wrong.map(([id, status]) =>
                `  ${id}: expected ${status}, found ${id in found ? found[id] ?? '(no data-status)' : '(no data-entity element)'}`);
            fail(`initial statuses differ:\n${lines.join('\n')}\n` +
                `  expected: ${JSON.stringify(args.expect)}\n  found:    ${JSON.stringify(found)}`);
        }

        try {
            await Promise.race([
                page.waitForSelector('html[data-live="connected"]', { state: 'attached', timeout: args.timeout }),
                noNavigation('waiting for the live connection'),
            ]);
        } catch (e) {
            if (e instanceof Failure) throw e;
            const live = await page.evaluate(() => document.documentElement.dataset.live ?? null).catch(() => null);
            fail(`html[data-live="connected"] not set within ${args.timeout} ms (data-live is ${JSON.stringify(live)})`);
        }

        await writeLine(process.stdout, 'READY');

        const { entity, status } = args.change;
        try {
            await Promise.race([
                page.waitForFunction(
                    ([entity, status]) => {
                        for (const el of document.querySelectorAll('[data-entity]')) {
                            if (el.getAttribute('data-entity') === entity && el.getAttribute('data-status') === status) {
                                return true;
                            }
                        }
                        return false;
                    },
                    [entity, status],
                    { timeout: args.timeout, polling: 'raf' },
                ),
                noNavigation(`waiting for ${entity} to become ${status}`),
            ]);
        } catch (e) {
            if (e instanceof Failure) throw e;
            const now = await readStatuses(page).catch(() => ({}));
            const live = await page.evaluate(() => document.documentElement.dataset.live ?? null).catch(() => null);
            fail(`${entity} did not become ${status} within ${args.timeout} ms: its data-status is ` +
                `${entity in now ? JSON.stringify(now[entity]) : '(no data-entity element)'}; ` +
                `data-live is ${JSON.stringify(live)}; all: ${JSON.stringify(now)}`);
        }

        const marker = await page.evaluate(() => window.__marker);
        if (navigatedTo !== null) fail(`the page navigated to ${navigatedTo}; it must update in place`);
        if (marker !== 1) fail(`window.__marker is ${JSON.stringify(marker)}, not 1: the page was reloaded`);

        await page.screenshot({ path: args.screenshot, fullPage: true });
        await writeLine(process.stdout, 'OK');
    } catch (e) {
        if (diagnostics.length > 0) {
            process.stderr.write(`${diagnostics.join('\n')}\n`);
        }
        if (page) {
            await page.screenshot({ path: args.screenshot, fullPage: true, timeout: 5000 }).catch((s) =>
                process.stderr.write(`status-page: could not save screenshot: ${s.message}\n`));
        }
        throw e;
    } finally {
        await browser.close().catch(() => {});
    }
}

main().then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(`status-page: FAILED: ${e instanceof Error ? e.message : e}\n`);
        process.exit(1);
    },
);
