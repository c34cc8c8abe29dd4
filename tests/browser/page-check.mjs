// Checks how status pages look, in headless Debian Chromium, for the Rust
// black-box tests, which spawn it as:
//
//   node tests/browser/page-check.mjs --artifacts <dir> --widths 1280,390
//        --page index=<url> --page system=<url> ... [--grow system=<slice key>]
//
// For every page, at every width, in the light and the dark scheme:
// 1. every body cell lines up with its column header (left and right edge,
//    across colspans), and a hidden header hides its column;
// 2. nothing overflows horizontally: the document is no wider than the
//    window, and no visible element reaches past either edge; a chart's
//    labels are at least 9 px high on screen and do not overlap;
// 3. each status label says its status in words and has its own shape;
// 4. the dark scheme is dark (background) with light text;
// 5. axe-core finds no serious or critical violation;
// 6. a full-page screenshot is saved as <dir>/<page>-<width>-<scheme>.png;
// 7. with --grow, that page's run bar for the slice gains a run live, from
//    the event stream, without a reload.
// Prints one JSON line per page view, then OK; any failure: the reasons on
// stderr and exit code 1. Requires `scripts/install-test-tools`.
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const STATUSES = ['healthy', 'degraded', 'unhealthy', 'unknown'];

function parseCli() {
    const { values } = parseArgs({
        options: {
            artifacts: { type: 'string' },
            widths: { type: 'string', default: '1280,390' },
            page: { type: 'string', multiple: true },
            grow: { type: 'string', multiple: true },
        },
        strict: true,
    });
    if (!values.artifacts) throw new Error('missing --artifacts');
    const pages = (values.page ?? []).map((p) => {
        const eq = p.indexOf('=');
        if (eq <= 0) throw new Error(`--page must be <name>=<url>, got ${JSON.stringify(p)}`);
        return { name: p.slice(0, eq), url: p.slice(eq + 1) };
    });
    if (pages.length === 0) throw new Error('no --page given');
    const widths = values.widths.split(',').map(Number);
    if (widths.some((w) => !Number.isInteger(w) || w < 200)) throw new Error(`bad --widths ${values.widths}`);
    const grow = (values.grow ?? []).map((g) => {
        const eq = g.indexOf('=');
        const page = pages.find((p) => p.name === g.slice(0, eq));
        if (eq <= 0 || !page) throw new Error(`--grow must be <page name>=<slice key>, got ${JSON.stringify(g)}`);
        return { page, key: g.slice(eq + 1) };
    });
    return { artifacts: values.artifacts, widths, pages, grow };
}

// Runs in the page: the geometry problems found, as sentences.
function geometry() {
    const problems = [];
    const visible = (el) => {
        const style = getComputedStyle(el);
        const box = el.getBoundingClientRect();
        return style.display !== 'none' && style.visibility !== 'hidden' && box.width > 0 && box.height > 0;
    };
    const name = (el) => {
        const text = (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40);
        const cls = el.getAttribute('class');
        return `<${el.tagName.toLowerCase()}${cls ? ` class="${cls}"` : ''}> "${text}"`;
    };
    // Columns of a row, by index, accounting for colspan.
    const columns = (row) => {
        const out = [];
        for (const cell of row.cells) {
            const span = cell.colSpan || 1;
            out.push({ cell, first: out.reduce((n, c) => n + c.span, 0), span });
        }
        return out.map((c) => ({ ...c }));
    };
    document.querySelectorAll('table').forEach((table, t) => {
        const headRows = table.tHead ? [...table.tHead.rows] : [];
        if (headRows.length === 0) return;
        const header = columns(headRows[headRows.length - 1]);
        const at = (index) => header.find((h) => h.first <= index && index < h.first + h.span);
        for (const body of table.tBodies) {
            for (const row of body.rows) {
                for (const c of columns(row)) {
                    const left = at(c.first);
                    const right = at(c.first + c.span - 1);
                    if (!left || !right) {
                        problems.push(`table ${t}: ${name(c.cell)} is in column ${c.first + 1}, which has no header`);
                        continue;
                    }
                    const shown = visible(c.cell);
                    const headShown = visible(left.cell) || visible(right.cell);
                    if (shown !== headShown) {
                        problems.push(`table ${t}: ${name(c.cell)} is ${shown ? 'shown' : 'hidden'} but its header ${name(left.cell)} is ${headShown ? 'shown' : 'hidden'}`);
                        continue;
                    }
                    if (!shown) continue;
                    const box = c.cell.getBoundingClientRect();
                    const l = left.cell.getBoundingClientRect();
                    const r = right.cell.getBoundingClientRect();
                    if (Math.abs(box.left - l.left) > 1 || Math.abs(box.right - r.right) > 1) {
                        problems.push(`table ${t}: ${name(c.cell)} spans x ${box.left.toFixed(1)}–${box.right.toFixed(1)}, ` +
                            `its header ${name(left.cell)}${c.span > 1 ? `…${name(right.cell)}` : ''} ${l.left.toFixed(1)}–${r.right.toFixed(1)}`);
                    }
                }
            }
        }
    });
    // Chart labels: big enough to read once the chart is scaled to the
    // page, and never on top of one another.
    document.querySelectorAll('svg.chart').forEach((chart) => {
        const texts = [...chart.querySelectorAll('text')].filter(visible);
        const chartName = (chart.getAttribute('aria-label') || '').slice(0, 60);
        for (const t of texts) {
            const size = t.getBoundingClientRect().height;
            if (size < 9) problems.push(`chart "${chartName}": label "${t.textContent}" is ${size.toFixed(1)} px high`);
        }
        texts.forEach((a, i) => texts.slice(i + 1).forEach((b) => {
            const p = a.getBoundingClientRect();
            const q = b.getBoundingClientRect();
            const overlap = Math.min(p.right, q.right) - Math.max(p.left, q.left) > 1 &&
                Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top) > 1;
            if (overlap) problems.push(`chart "${chartName}": labels "${a.textContent}" and "${b.textContent}" overlap`);
        }));
    });
    const width = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth > width) {
        problems.push(`the document is ${document.documentElement.scrollWidth} px wide in a ${width} px window`);
    }
    for (const el of document.body.querySelectorAll('*')) {
        if (!visible(el) || el.closest('.visually-hidden')) continue;
        const box = el.getBoundingClientRect();
        if (box.right > width + 0.5 || box.left < -0.5) {
            problems.push(`${name(el)} reaches x ${box.left.toFixed(1)}–${box.right.toFixed(1)} in a ${width} px window`);
        }
    }
    return problems;
}

// Runs in the page: each status label's word and the shape of its marker.
function labels() {
    return [...document.querySelectorAll('[data-status] .label')].map((label) => {
        const holder = label.closest('[data-status]');
        const marker = getComputedStyle(label, '::before');
        return {
            status: holder.dataset.status,
            text: label.textContent.trim(),
            shape: [marker.borderRadius, marker.clipPath, marker.backgroundColor === 'rgba(0, 0, 0, 0)' ? 'hollow' : 'filled'].join(' | '),
            width: parseFloat(marker.width),
        };
    });
}

function luminance(rgb) {
    const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
        const c = v / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

async function check(browser, page, width, scheme, artifacts) {
    const problems = [];
    const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme: scheme });
    const tab = await context.newPage();
    const errors = [];
    tab.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    try {
        const response = await tab.goto(page.url, { waitUntil: 'load' });
        if (!response || !response.ok()) {
            problems.push(`GET ${page.url} answered ${response ? response.status() : 'nothing'}`);
            return problems;
        }
        problems.push(...(await tab.evaluate(geometry)));

        const found = await tab.evaluate(labels);
        if (found.length === 0) problems.push('no status label on the page');
        const shapes = new Map();
        for (const l of found) {
            if (l.text !== l.status) problems.push(`a ${l.status} label reads "${l.text}"`);
            if (!(l.width > 0)) problems.push(`the ${l.status} label has no marker`);
            const seen = shapes.get(l.status);
            if (seen !== undefined && seen !== l.shape) problems.push(`${l.status} labels differ in shape: ${seen} / ${l.shape}`);
            shapes.set(l.status, l.shape);
        }
        const byShape = new Map();
        for (const [status, shape] of shapes) {
            if (byShape.has(shape)) problems.push(`${status} and ${byShape.get(shape)} share the marker shape ${shape}`);
            byShape.set(shape, status);
        }

        const colours = await tab.evaluate(() => {
            const html = getComputedStyle(document.documentElement);
            return { background: html.backgroundColor, text: getComputedStyle(document.body).color };
        });
        const [bg, fg] = [luminance(colours.background), luminance(colours.text)];
        if (scheme === 'dark' && !(bg < 0.1 && fg > 0.5)) {
            problems.push(`the dark scheme shows ${colours.text} on ${colours.background}`);
        }
        if (scheme === 'light' && !(bg > 0.8 && fg < 0.1)) {
            problems.push(`the light scheme shows ${colours.text} on ${colours.background}`);
        }

        await tab.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
        const violations = await tab.evaluate(async () => {
            const result = await window.axe.run(document, { resultTypes: ['violations'] });
            return result.violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')})`);
        });
        problems.push(...violations.map((v) => `axe: ${v}`));
        problems.push(...errors);

        const shot = `${artifacts}/${page.name}-${width}-${scheme}.png`;
        await tab.screenshot({ path: shot, fullPage: true });
        process.stdout.write(`${JSON.stringify({ page: page.name, width, scheme, labels: found.length, screenshot: shot, problems: problems.length })}\n`);
        return problems;
    } finally {
        await context.close();
    }
}

// The page's bar for `key` gains a run from the event stream, in place.
async function grows(browser, { page, key }) {
    const tab = await browser.newPage();
    try {
        await tab.goto(page.url, { waitUntil: 'load' });
        await tab.waitForSelector('html[data-live="connected"]', { state: 'attached', timeout: 10000 });
        await tab.evaluate(() => { window.__marker = 1; });
        const count = (k) => {
            const fragment = [...document.querySelectorAll('[data-live-fragment]')].find((f) => f.dataset.liveFragment === k);
            return fragment ? fragment.querySelectorAll('svg.runs rect[role=img]').length : -1;
        };
        const before = await tab.evaluate(count, key);
        if (before < 0) return [`no run bar for ${key}`];
        if (before >= 90) return [`the bar for ${key} is full (${before}); it cannot show growth`];
        try {
            await tab.waitForFunction(([k, n, f]) => new Function(`return (${f})`)()(k) > n,
                [key, before, count.toString()], { timeout: 15000 });
        } catch {
            return [`the bar for ${key} stayed at ${await tab.evaluate(count, key)} runs`];
        }
        if (await tab.evaluate(() => window.__marker) !== 1) return ['the page reloaded instead of updating in place'];
        process.stdout.write(`${JSON.stringify({ page: page.name, grew: key, from: before })}\n`);
        return [];
    } finally {
        await tab.close();
    }
}

async function main() {
    const args = parseCli();
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    const all = [];
    try {
        for (const page of args.pages) {
            for (const width of args.widths) {
                for (const scheme of ['light', 'dark']) {
                    const problems = await check(browser, page, width, scheme, args.artifacts);
                    all.push(...problems.map((p) => `${page.name} at ${width} px, ${scheme}: ${p}`));
                }
            }
        }
        for (const g of args.grow) {
            all.push(...(await grows(browser, g)).map((p) => `${g.page.name}, live: ${p}`));
        }
    } finally {
        await browser.close().catch(() => {});
    }
    if (all.length > 0) throw new Error(`\n  ${all.join('\n  ')}`);
    process.stdout.write('OK\n');
}

main().then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(`page-check: FAILED: ${e instanceof Error ? e.message : e}\n`);
        process.exit(1);
    },
);
