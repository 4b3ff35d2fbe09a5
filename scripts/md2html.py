#!/usr/bin/env python3
"""Render report.md to a standalone HTML page (standard library only): headings, paragraphs,
bold, code, GitHub tables, images, lists. Enough for energy-fit's report; not a general
Markdown implementation."""
import html
import re
import sys


def inline(t):
    t = html.escape(t, quote=False).replace("\\*", "&#42;")
    t = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return t


def convert(md):
    out, lines, i = [], md.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in rows[0]) + "</tr></thead><tbody>")
            for r in rows[2:]:
                out.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>")
            out.append("</tbody></table>")
            continue
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
            continue
        elif line.strip():
            para = [line]
            while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith(("#", "|", "- ")):
                i += 1
                para.append(lines[i])
            out.append(f"<p>{inline(' '.join(para))}</p>")
        i += 1
    return "\n".join(out)


STYLE = """body{font-family:'DejaVu Sans',sans-serif;max-width:1500px;margin:24px auto;padding:0 16px;color:#111}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px}
td:not(:first-child){text-align:right}th{background:#f2f2f2}img{max-width:100%;border:1px solid #eee;margin:6px 0 18px}
code{background:#f4f4f4;padding:0 3px}"""

if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    font = sys.argv[3] if len(sys.argv) > 3 else ""
    style = STYLE + (f"@font-face{{font-family:'DejaVu Sans';src:url('{font}')}}" if font else "")
    body = convert(open(src, encoding="utf-8").read())
    with open(dst, "w", encoding="utf-8") as f:
        f.write(f"<!doctype html><html><head><meta charset='utf-8'><title>energy-fit report</title><style>{style}</style></head><body>\n{body}\n</body></html>\n")
