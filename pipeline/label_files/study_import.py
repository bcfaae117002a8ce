"""Import the study's spreadsheets (Jajal et al.'s artifact) into label files keyed by issue URL.

``FailureAnalysis.xlsx`` gives the 200 labelled issues (``study.csv``) and the drift check
(``drift-a.csv``, ``drift-b.csv``); ``PilotStudy.xlsx`` gives the two pilot raters
(``pilot-r1.csv``, ``pilot-r2.csv``). Spellings and number codes are mapped through the
codebook; titles are never written to label files (the sheets are not ours to republish).

>>> result = import_study("../shared/paper", out_dir="labels")   # doctest: +SKIP
>>> sorted(result.files)                                          # doctest: +SKIP
['drift-a', 'drift-b', 'pilot-r1', 'pilot-r2', 'study']
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from openpyxl.utils import get_column_letter

from pipeline.codebook import SUBTYPE_DIMENSION, Codebook, load_codebook
from pipeline.errors import UserError
from pipeline.label_files.files import write_csv
from pipeline.sources import issue_url, parse_issue_url

FAILURE_WORKBOOK = "FailureAnalysis.xlsx"
PILOT_WORKBOOK = "PilotStudy.xlsx"

# sheet name -> converter; the study's two main sheets
MAIN_SHEETS = {"tf2onnx": "tf2onnx", "PyTorch": "torch.onnx"}
DRIFT_SHEETS = {"TF Drift Testing": "tf2onnx", "PT Drift Testing": "torch.onnx"}
PILOT_SHEETS = {
    "r1": {"tf2onnx Issues - R1": "tf2onnx", "PyTorch Issues - R1": "torch.onnx"},
    "r2": {"tf2onnx Issues - R2": "tf2onnx", "PyTorch Issues - R2": "torch.onnx"},
}
CONVERTER_REPOS = {"tf2onnx": "onnx/tensorflow-onnx", "torch.onnx": "pytorch/pytorch"}

# (name column, code column) per dimension, in the main sheets
NAME_COLUMNS = {
    "cause": ("Type", "Type By Number"),
    "symptom": ("Symptoms", "Symptom by Number"),
    "stage": ("Component", "Component by number"),
}
SUBTYPE_COLUMNS = {
    "incompatibility": ("Incomp. Type", "Incomp. Type by Number"),
    "type_problem": ("Type Prob. Type", "Type Prob. Type by Number"),
}


@dataclass
class ImportResult:
    """What an import wrote: label tables by file stem, and the titles seen (not written)."""

    files: dict[str, Path] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    code_maps: dict[str, dict[int, str]] = field(default_factory=dict)


class _Sheet:
    """One sheet with its header row, giving errors that name sheet, row and column."""

    def __init__(self, book: Path, name: str, df: pd.DataFrame, header_rows: int, head: pd.DataFrame):
        self.book, self.name, self.df, self.header_rows = book, name, df, header_rows
        self.head = head   # the header rows as read (a sheet with two header rows names columns in its second)

    def where(self, i: int, col: str | int) -> str:
        pos = col if isinstance(col, int) else list(self.df.columns).index(col)
        letter = get_column_letter(pos + 1)
        label = f" ({col!r})" if isinstance(col, str) else ""
        return f"{self.book.name} sheet {self.name!r} row {i + self.header_rows + 1} column {letter}{label}"

    def require(self, *cols: str) -> None:
        missing = [c for c in cols if c not in self.df.columns]
        if missing:
            raise UserError(
                f"{self.book.name} sheet {self.name!r}: missing column(s) {', '.join(repr(c) for c in missing)} "
                f"(found: {', '.join(str(c) for c in self.df.columns if not str(c).startswith('Unnamed'))})"
            )


def _open_workbook(path: Path) -> pd.ExcelFile:
    if not path.is_file():
        raise UserError(f"{path}: spreadsheet not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not an .xlsx spreadsheet")
    try:
        return pd.ExcelFile(path, engine="openpyxl")
    except Exception as e:  # openpyxl raises many types for corrupt files
        raise UserError(f"{path}: cannot be read as a spreadsheet ({type(e).__name__}: {e})") from None


def _sheet(xl: pd.ExcelFile, book: Path, name: str, header_rows: int = 1, ncols: int | None = None) -> _Sheet:
    if name not in xl.sheet_names:
        raise UserError(f"{book.name}: missing sheet {name!r} (found: {', '.join(xl.sheet_names)})")
    raw = pd.read_excel(xl, sheet_name=name, header=None)
    if raw.shape[0] < header_rows:
        raise UserError(f"{book.name} sheet {name!r}: is empty")
    if ncols is not None:
        raw = raw.iloc[:, :ncols]
    if header_rows == 1:
        cols = [str(c).strip() if pd.notna(c) else f"Unnamed: {i}" for i, c in enumerate(raw.iloc[0])]
    else:
        cols = list(range(raw.shape[1]))
    df = raw.iloc[header_rows:].reset_index(drop=True)
    df.columns = cols
    return _Sheet(book, name, df, header_rows, raw.iloc[:header_rows])


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and pd.isna(v)) or str(v).strip() == ""


def _url(sh: _Sheet, i: int, col: str | int, converter: str) -> tuple[str, str, int]:
    v = sh.df.iloc[i][col]
    try:
        repo, number = parse_issue_url(str(v))
    except ValueError:
        raise UserError(f"{sh.where(i, col)}: {v!r} is not a GitHub issue URL") from None
    if repo.lower() != CONVERTER_REPOS[converter]:
        raise UserError(f"{sh.where(i, col)}: {v!r} is not in {CONVERTER_REPOS[converter]} ({converter})")
    return issue_url(repo, number), repo, number


def _by_name(cb: Codebook, sh: _Sheet, i: int, col: str, dim: str, cause: str | None = None) -> str:
    v = sh.df.iloc[i][col]
    if _blank(v):
        raise UserError(f"{sh.where(i, col)}: empty {dim}; valid: {', '.join(cb.choices(dim, cause))}")
    try:
        return cb.resolve(dim, str(v).strip(), by="name", cause=cause)
    except KeyError as e:
        raise UserError(f"{sh.where(i, col)}: {e.args[0]}") from None


def _by_code(code_map: dict[int, str], sh: _Sheet, i: int, col: str | int, dim: str) -> str:
    v = sh.df.iloc[i][col]
    try:
        code = int(float(str(v)))
        if code != float(str(v)):
            raise ValueError
    except ValueError:
        raise UserError(f"{sh.where(i, col)}: {v!r} is not a {dim} number code; valid: "
                        f"{', '.join(f'{k}={c}' for k, c in sorted(code_map.items()))}") from None
    if code not in code_map:
        raise UserError(f"{sh.where(i, col)}: {dim} code {code} cannot be mapped; valid: "
                        f"{', '.join(f'{k}={c}' for k, c in sorted(code_map.items()))}")
    return code_map[code]


def _learn_codes(maps: dict[str, dict[int, str]], sh: _Sheet, i: int, dim: str, code_col: str, cat: str) -> None:
    """Record code -> category as the named sheets use it; a contradiction is an error."""
    v = sh.df.iloc[i][code_col]
    if _blank(v):
        return
    code = int(float(str(v)))
    seen = maps.setdefault(dim, {}).get(code)
    if seen is not None and seen != cat:
        raise UserError(f"{sh.where(i, code_col)}: code {code} means {seen!r} elsewhere but {cat!r} here")
    maps[dim][code] = cat


def _code_maps(cb: Codebook, learned: dict[str, dict[int, str]]) -> dict[str, dict[int, str]]:
    """Codes learned from the named sheets; codes they never use fall back to the codebook's."""
    out: dict[str, dict[int, str]] = {}
    for dim in ("stage", "symptom", "cause"):
        m = {n: c.id for c in cb.dimensions[dim].categories for n in c.codes}
        m.update(learned.get(dim, {}))
        out[dim] = m
    for cause in ("incompatibility", "type_problem"):
        key = f"{SUBTYPE_DIMENSION}:{cause}"
        m = {n: s.id for s in cb.category("cause", cause).subtypes for n in s.codes}
        m.update(learned.get(key, {}))
        out[key] = m
    return out


def read_failure_analysis(path: Path, cb: Codebook, result: ImportResult) -> pd.DataFrame:
    """The 200 labelled issues of the two main sheets (names trusted; codes learned)."""
    xl = _open_workbook(path)
    rows = []
    learned = result.code_maps
    for sheet, converter in MAIN_SHEETS.items():
        sh = _sheet(xl, path, sheet, ncols=14)
        sh.require("URL", "Title", *[c for pair in NAME_COLUMNS.values() for c in pair],
                   *[c for pair in SUBTYPE_COLUMNS.values() for c in pair])
        n = 0
        for i in range(len(sh.df)):
            if _blank(sh.df.iloc[i]["URL"]):
                continue
            url, repo, number = _url(sh, i, "URL", converter)
            rec = {"url": url, "converter": converter, "repo": repo, "number": number, "rater": "study"}
            for dim, (name_col, code_col) in NAME_COLUMNS.items():
                rec[dim] = _by_name(cb, sh, i, name_col, dim)
                _learn_codes(learned, sh, i, dim, code_col, rec[dim])
            rec[SUBTYPE_DIMENSION] = ""
            if rec["cause"] in SUBTYPE_COLUMNS:
                name_col, code_col = SUBTYPE_COLUMNS[rec["cause"]]
                if not _blank(sh.df.iloc[i][name_col]):
                    rec[SUBTYPE_DIMENSION] = _by_name(cb, sh, i, name_col, SUBTYPE_DIMENSION, cause=rec["cause"])
                    _learn_codes(learned, sh, i, f"{SUBTYPE_DIMENSION}:{rec['cause']}", code_col,
                                 rec[SUBTYPE_DIMENSION])
            title = sh.df.iloc[i]["Title"]
            if not _blank(title):
                result.titles[url] = str(title).strip()
            rows.append(rec)
            n += 1
        if n == 0:
            raise UserError(f"{path.name} sheet {sheet!r}: no labelled issues")
    df = pd.DataFrame(rows)
    dup = df[df.duplicated("url", keep=False)]
    if not dup.empty:
        raise UserError(f"{path.name}: issue {dup.iloc[0]['url']} is labelled twice")
    return df


def read_drift(path: Path, codes: dict[str, dict[int, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The drift check: two raters (A, B), number codes only, two header rows."""
    xl = _open_workbook(path)
    # column offsets of each rater's block: cause, symptom, stage, incomp. type, type prob. type
    blocks = {"A": 4, "B": 9}
    out = {"A": [], "B": []}
    for sheet, converter in DRIFT_SHEETS.items():
        sh = _sheet(xl, path, sheet, header_rows=2)
        header = sh.head.iloc[1].tolist()
        if len(header) < 14 or str(header[2]).strip() != "URL":
            raise UserError(f"{path.name} sheet {sheet!r}: missing column 'URL' in the second header row (column C)")
        for i in range(len(sh.df)):
            if _blank(sh.df.iloc[i][2]):
                continue
            url, repo, number = _url(sh, i, 2, converter)
            for rater, off in blocks.items():
                rec = {"url": url, "converter": converter, "repo": repo, "number": number, "rater": rater}
                rec["cause"] = _by_code(codes["cause"], sh, i, off, "cause")
                rec["symptom"] = _by_code(codes["symptom"], sh, i, off + 1, "symptom")
                rec["stage"] = _by_code(codes["stage"], sh, i, off + 2, "stage")
                rec[SUBTYPE_DIMENSION] = ""
                sub_col = {"incompatibility": off + 3, "type_problem": off + 4}.get(rec["cause"])
                if sub_col is not None and not _blank(sh.df.iloc[i][sub_col]):
                    rec[SUBTYPE_DIMENSION] = _by_code(codes[f"{SUBTYPE_DIMENSION}:{rec['cause']}"], sh, i, sub_col,
                                                      f"{rec['cause']} subtype")
                out[rater].append(rec)
    return pd.DataFrame(out["A"]), pd.DataFrame(out["B"])


def read_pilot(path: Path, cb: Codebook, result: ImportResult) -> dict[str, pd.DataFrame]:
    """The pilot's two raters, from their named sheets (cause and symptom)."""
    xl = _open_workbook(path)
    out: dict[str, pd.DataFrame] = {}
    for rater, sheets in PILOT_SHEETS.items():
        rows = []
        for sheet, converter in sheets.items():
            sh = _sheet(xl, path, sheet)
            sh.require("URL", "Type", "Symptoms")
            for i in range(len(sh.df)):
                # the sheets carry a legend below the data, without URLs
                if _blank(sh.df.iloc[i]["URL"]):
                    continue
                url, repo, number = _url(sh, i, "URL", converter)
                rows.append({
                    "url": url, "converter": converter, "repo": repo, "number": number, "rater": rater,
                    "cause": _by_name(cb, sh, i, "Type", "cause"),
                    "symptom": _by_name(cb, sh, i, "Symptoms", "symptom"),
                })
                if "Title" in sh.df.columns and not _blank(sh.df.iloc[i]["Title"]):
                    result.titles.setdefault(url, str(sh.df.iloc[i]["Title"]).strip())
        if not rows:
            raise UserError(f"{path.name}: no pilot labels for rater {rater}")
        out[rater] = pd.DataFrame(rows)
    return out


def import_study(
    paper_dir: Path | str,
    out_dir: Path | str | None = None,
    codebook: Codebook | None = None,
    write: bool = True,
) -> ImportResult:
    """Read both workbooks in ``paper_dir`` and (unless ``write=False``) write the five label files."""
    from pipeline.paths import labels_dir

    src = Path(paper_dir)
    if not src.is_dir():
        raise UserError(f"{src}: not a directory (expected the folder holding {FAILURE_WORKBOOK} and {PILOT_WORKBOOK})")
    cb = codebook or load_codebook()
    result = ImportResult()
    study = read_failure_analysis(src / FAILURE_WORKBOOK, cb, result)
    codes = _code_maps(cb, result.code_maps)
    drift_a, drift_b = read_drift(src / FAILURE_WORKBOOK, codes)
    pilot = read_pilot(src / PILOT_WORKBOOK, cb, result)
    result.tables = {"study": study, "drift-a": drift_a, "drift-b": drift_b,
                     "pilot-r1": pilot["r1"], "pilot-r2": pilot["r2"]}
    if write:
        dest = Path(out_dir) if out_dir else labels_dir()
        for stem, df in result.tables.items():
            result.files[stem] = write_csv(df, dest / f"{stem}.csv")
    return result
