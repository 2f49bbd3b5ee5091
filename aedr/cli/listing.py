"""``aedr plugins``, ``aedr models``, ``aedr methods``: what is registered."""

from __future__ import annotations

import dataclasses
import json

from rich.table import Table

from ..text import fold_words, markup, print_widest_fitting
from .shared import app, JsonOpt, out, plugins


@app.command("plugins")
def plugins_cmd(as_json: bool = JsonOpt) -> None:
    """List loaded plugins, their versions, hooks, what they register and any errors."""
    infos = list(plugins().info.values())
    if as_json:
        out.print_json(json.dumps([dataclasses.asdict(i) | {"ok": i.ok} for i in infos]))
        return
    wide, narrow = Table(title="aedr plugins"), Table(title="aedr plugins")
    for col in ("plugin", "version", "hooks", "registers", "status"):
        wide.add_column(col)
    narrow.add_column("plugin", no_wrap=True)  # the hooks go under the name, the status under what it registers
    narrow.add_column("version", no_wrap=True)
    narrow.add_column("registers and status", overflow="fold")
    for i in infos:
        kinds = ("models", "methods", "datasets", "metrics", "perturbations", "executors")
        registers = markup("; ".join(f"{k}: {', '.join(getattr(i, k))}" for k in kinds if getattr(i, k)) or "-")
        status = "[green]ok[/]" if i.ok else "[red]" + markup("\n".join(i.errors)) + "[/]"
        name = f"{markup(i.name)} [dim](built-in)[/]" if i.builtin else markup(i.name)
        hooks = markup(", ".join(i.hooks) or "-")
        wide.add_row(name, markup(i.version or "-"), hooks, registers, status)
        narrow.add_row(f"{markup(i.name)}\n[dim]{'built-in; ' if i.builtin else ''}{markup(chr(10).join(i.hooks) or '-')}[/]",
                       markup(i.version or "-"), f"{registers}\n{status}")
    print_widest_fitting(out, wide, narrow)


@app.command("models")
def models_cmd(as_json: bool = JsonOpt) -> None:
    """List registered models, their autoencoder family and whether their weights are here."""
    p = plugins()
    rows = []
    for entry in p.models:
        m = entry.obj
        try:
            avail = m.availability()
            local, detail = avail.local, avail.detail
        except Exception as exc:  # availability checks must never break the listing
            local, detail = False, f"{type(exc).__name__}: {exc}"
        rows.append(
            {"name": m.name, "family": m.family, "description": m.description, "generator": m.can_generate,
             "calibration": m.calibration.describe(), "local_weights": local, "availability": detail, "plugin": entry.plugin}
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    wide, narrow = Table(title="aedr models"), Table(title="aedr models", caption="plugins and more: aedr models --json", caption_justify="left")
    for col in ("model", "family", "generator", "weights", "plugin", "description"):
        wide.add_column(col)
    for col in ("model", "family", "weights", "description"):  # the availability detail goes under the description
        narrow.add_column(col, no_wrap=col != "description", overflow="fold")
    room = description_room(narrow, rows)
    for r in rows:
        state = "[green]local[/]" if r["local_weights"] else "[yellow]not local[/]"
        detail = f"[dim]{markup(r['availability'])}[/]" if r["availability"] else ""
        name = markup(r["name"]) + ("" if r["generator"] else "\n[dim](no generator)[/]")
        wide.add_row(markup(r["name"]), markup(r["family"]), "yes" if r["generator"] else "no", f"{state} {detail}".strip(), markup(r["plugin"]),
                     markup(r["description"]))
        folded = f"[dim]{markup(fold_words(r['availability'], room))}[/]" if detail else ""
        narrow.add_row(name, markup(r["family"]), state, markup(fold_words(r["description"], room)) + (f"\n{folded}" if folded else ""))
    print_widest_fitting(out, wide, narrow)


def description_room(narrow: Table, rows: list[dict]) -> int:
    """The width the narrow models table leaves its description column at this terminal (its other
    columns never wrap: model name, family, "not local"), at least 20."""
    model = max([len("(no generator)"), *(len(r["name"]) for r in rows)])
    family = max([len("family"), *(len(r["family"]) for r in rows)])
    borders = 3 * len(narrow.columns) + 1
    return max(20, out.width - borders - model - family - len("not local"))


@app.command("methods")
def methods_cmd(as_json: bool = JsonOpt) -> None:
    """List registered attribution methods with their options and cost."""
    rows = []
    for entry in plugins().methods:
        cls = entry.obj
        options = cls.Options.defaults()
        rows.append(
            {"name": cls.name, "description": cls.description, "needs_grad": cls.needs_grad, "cost": cls.cost.describe(),
             "score_direction": cls.score_direction, "options": options, "plugin": entry.plugin}
        )
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    title = "aedr methods (lower score = belonging)"
    wide, narrow = Table(title=title), Table(title=title, caption="plugins and more: aedr methods --json", caption_justify="left")
    for col in ("method", "gradients", "cost per image", "options (defaults)", "plugin", "description"):
        wide.add_column(col)
    narrow.add_column("method", no_wrap=True)
    narrow.add_column("cost per image", overflow="fold", max_width=18)
    narrow.add_column("description and options (defaults)", overflow="fold")  # the options wrap after their commas
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        wide.add_row(markup(r["name"]), "yes" if r["needs_grad"] else "no", markup(r["cost"]), markup(opts), markup(r["plugin"]), markup(r["description"]))
        narrow.add_row(markup(r["name"]), markup(r["cost"]), f"{markup(r['description'])}\n[dim]{markup(opts)}[/]")
    print_widest_fitting(out, wide, narrow)
