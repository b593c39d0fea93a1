"""How a report page reads and fits its screen, measured in Chromium (Playwright, Debian's /usr/bin/chromium,
no browser download): words in the whole page and per top-level section, and how high each is at 1,280 px,
as shipped (every <details> folded) and with every <details> open; how often "Holm p" appears; the document's
width at 1,280, 1,024 and 412 px and the tables that overflow the viewport there (their right edge past it;
every <details> open, so a folded table counts), each either scrolling inside its own box or widening the
page; and the text of the first screen at 1,280 x 800.

    python bench/page_metrics.py report/STUDY/index.html [--out bench/out/page_metrics.json]
"""

import argparse
import json
from pathlib import Path

from common import OUT_DIR, print_table
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
WIDTHS = (1280, 1024, 412)
SCREEN_HEIGHT = 800
SCROLLS = {True: "scrolls in its box", False: "widens the page"}

WORDS = r"""() => {
  const words = text => (text.match(/\S+/g) || []).length;
  const sections = Array.from(document.querySelectorAll('section'))
    .filter(s => !s.parentElement.closest('section'))
    .map(s => ({id: s.id, words: words(s.innerText), height: Math.round(s.getBoundingClientRect().height)}));
  const text = document.body.innerText;
  return {words: words(text), holm: (text.match(/Holm p/g) || []).length, sections,
          height: document.documentElement.scrollHeight};
}"""

OPEN_ALL = "() => document.querySelectorAll('details').forEach(d => { d.open = true; })"

# a table's name: its id, else its class and its section and its number there; a table past the viewport's
# right edge widens the page unless an ancestor scrolls sideways
WIDTH = r"""() => {
  const viewport = document.documentElement.clientWidth;
  const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
  const name = t => {
    if (t.id) return '#' + t.id;
    const section = t.closest('section');
    const within = section ? Array.from(section.querySelectorAll('table')).indexOf(t) + 1 : 0;
    const where = section ? `#${section.id} table ${within}` : 'table';
    return (t.className ? 'table.' + t.className + ' ' : '') + where;
  };
  const wide = Array.from(document.querySelectorAll('table'))
    .filter(t => t.getBoundingClientRect().right > viewport + 0.5)
    .map(t => {
      let box = t.parentElement;
      while (box && box !== document.body && !scrolls(box)) box = box.parentElement;
      return {table: name(t), width: Math.round(t.getBoundingClientRect().width),
              scrolls_in_its_box: !!box && box !== document.body};
    });
  return {document: document.documentElement.scrollWidth, viewport, wide};
}"""

# the elements that carry the reader's text, outermost only (a paragraph inside a list item counts once)
FIRST_SCREEN = r"""() => {
  const kinds = 'h1,h2,h3,h4,p,li,caption,summary,figcaption';
  return Array.from(document.querySelectorAll(kinds))
    .filter(e => !e.parentElement.closest(kinds))
    .filter(e => {
      const r = e.getBoundingClientRect();
      return r.height > 0 && r.top < innerHeight && r.bottom > 0;
    })
    .map(e => ({tag: e.tagName.toLowerCase(), text: e.innerText.replace(/\s+/g, ' ').trim(),
                cut: e.getBoundingClientRect().bottom > innerHeight}));
}"""


def measure(path: Path) -> dict:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            widths = {}
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": SCREEN_HEIGHT})
                page.goto(path.resolve().as_uri(), wait_until="load")
                if width == WIDTHS[0]:
                    folded, first_screen = page.evaluate(WORDS), page.evaluate(FIRST_SCREEN)
                shipped = page.evaluate(WIDTH)["document"]
                page.evaluate(OPEN_ALL)
                if width == WIDTHS[0]:
                    unfolded = page.evaluate(WORDS)
                widths[width] = {"document_as_shipped": shipped, **page.evaluate(WIDTH)}
                page.close()
            version = browser.version
        finally:
            browser.close()
    return {
        "page": str(path),
        "kib": path.stat().st_size // 1024,
        "chromium": version,
        "folded": folded,
        "unfolded": unfolded,
        "widths": widths,
        "first_screen": first_screen,
    }


def report(result: dict) -> None:
    folded, unfolded = result["folded"], result["unfolded"]
    print(f"{result['page']} ({result['kib']} KiB), Chromium {result['chromium']}")
    opened = {s["id"]: s for s in unfolded["sections"]}
    print_table(
        f"Words and heights at {WIDTHS[0]} px, as shipped (every <details> folded) and with every one open",
        ["", "words as shipped", "words, all open", "px high as shipped", "px high, all open"],
        [["whole page", folded["words"], unfolded["words"], folded["height"], unfolded["height"]]]
        + [
            [
                f"section #{s['id']}",
                s["words"],
                opened[s["id"]]["words"],
                s["height"],
                opened[s["id"]]["height"],
            ]
            for s in folded["sections"]
        ]
        + [['"Holm p"', folded["holm"], unfolded["holm"], "", ""]],
    )
    print_table(
        "Widths, px (tables measured with every <details> open)",
        ["viewport", "document as shipped", "document, all open", "tables past the viewport's right edge"],
        [
            [
                width,
                w["document_as_shipped"],
                w["document"],
                "; ".join(
                    f"{t['table']} {t['width']} ({SCROLLS[t['scrolls_in_its_box']]})" for t in w["wide"]
                )
                or "none",
            ]
            for width, w in result["widths"].items()
        ],
    )
    print(f"\nFirst screen at {WIDTHS[0]} x {SCREEN_HEIGHT}:")
    for e in result["first_screen"]:
        print(f"  {e['tag']}: {e['text']}{' [continues below]' if e['cut'] else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="a report page, e.g. report/STUDY/index.html")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "page_metrics.json")
    args = parser.parse_args()
    result = measure(args.page)
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
