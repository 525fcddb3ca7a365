"""The patch under review: read from ``git format-patch`` output or an mbox saved from the list.

What a report needs from it: the subject (RFC 2047 decoded and unfolded, with the
``[PATCH v2 1/3]`` prefix kept apart), the author, the date, the Message-ID (for
``Link: https://lore.kernel.org/r/<Message-ID>``), the files the diff touches, and the
functions it touches.  Functions come from two places:

* hunk headers: ``@@ -3300,9 +3300,18 @@ void exit_mmap(struct mm_struct *mm)`` names the
  function git found above the hunk (the nearest line matching its funcname pattern, so it
  can be the function *before* a change that starts at a definition);
* function definitions the diff adds or removes: a ``+``/``-`` line that starts at column 0
  with ``type name(`` and whose parameter list is followed by a body, not by ``;`` (kernel
  style puts every definition at column 0; a prototype in a header ends with ``);``).

``SYSCALL_DEFINEn(name, ...)`` stands for the function ``__do_sys_name``.  A patch series
(several messages in one mbox) is read whole: the subject and Message-ID of the cover
letter (``0/n``) or else of the first message, and the files and functions of all of them.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tracekit.errors import InputError

__all__ = ["PatchInfo", "PatchError", "read_patch", "parse_patch_text", "split_subject", "diff_functions"]

LORE = "https://lore.kernel.org/r/"

_PREFIX_RE = re.compile(r"^\s*((?:(?:re|fwd?|aw)\s*:\s*)*)((?:\[[^\]]*\]\s*)+)", re.IGNORECASE)
_SERIES_RE = re.compile(r"\b(\d+)\s*/\s*(\d+)\b")
_HUNK_RE = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@ ?(.*)$")
_CALL_RE = re.compile(r"([A-Za-z_]\w*)\s*\(")
_SYSCALL_RE = re.compile(r"\b(?:COMPAT_)?SYSCALL_DEFINE\d\s*\(\s*(\w+)")
_DEF_RE = re.compile(
    r"^(?!#)(?!(?:if|for|while|switch|return|else|do|sizeof|case|goto)\b)"
    r"[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*\("
)
_NOT_FUNCS = frozenset({"if", "for", "while", "switch", "return", "sizeof", "defined", "typeof", "__attribute__"})


class PatchError(InputError):
    """A patch file that cannot be read: names the file and the reason."""


@dataclass
class PatchInfo:
    """What a report shows about the patch under review."""

    subject: str
    prefix: str = ""  # "PATCH v2 1/3", "RFC PATCH" ...: the bracketed tags, brackets removed
    author: str | None = None
    date: str | None = None
    message_id: str | None = None  # without the angle brackets
    files: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    messages: int = 1
    path: str | None = None

    @property
    def link(self) -> str | None:
        """``https://lore.kernel.org/r/<Message-ID>``, when the Message-ID is known."""
        return LORE + self.message_id if self.message_id else None

    @property
    def full_subject(self) -> str:
        return f"[{self.prefix}] {self.subject}" if self.prefix else self.subject

    def as_dict(self) -> dict:
        d = asdict(self)
        d["link"] = self.link
        return d


def split_subject(subject: str) -> tuple[str, str]:
    """Split ``Re: [RFC PATCH v2 1/3] mm: foo`` into (``RFC PATCH v2 1/3``, ``mm: foo``)."""
    s = " ".join(subject.split())
    m = _PREFIX_RE.match(s)
    if not m:
        return "", s
    tags = re.findall(r"\[([^\]]*)\]", m.group(2))
    return " ".join(t.strip() for t in tags if t.strip()), s[m.end():].strip()


def _definition_name(lines: list[str], i: int) -> str | None:
    """If ``lines[i]`` (an added or removed line, sign stripped) starts a function definition,
    its name; else None.  Reads on until the parameter list closes to tell a definition from
    a prototype."""
    text = lines[i]
    m = _SYSCALL_RE.match(text)
    if m:
        return "__do_sys_" + m.group(1)
    m = _DEF_RE.match(text)
    if not m or m.group(1) in _NOT_FUNCS:
        return None
    if "=" in text[: m.start(1)]:
        return None  # an initialiser, "int x = foo(" is no definition
    depth = 0
    rest = text[m.end(1):]
    j = i
    while True:
        for k, ch in enumerate(rest):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    tail = rest[k + 1:].strip()
                    if tail.startswith(";") or tail.startswith(","):
                        return None
                    if tail == "" and j + 1 < len(lines) and lines[j + 1].strip().startswith(";"):
                        return None
                    return m.group(1)
        j += 1
        if j >= len(lines) or j - i > 12:
            return None
        rest = lines[j]


def diff_functions(diff: str) -> tuple[list[str], list[str]]:
    """Files and functions a unified diff touches, each in order of first appearance."""
    files: list[str] = []
    funcs: list[str] = []

    def add(lst: list[str], name: str | None) -> None:
        if name and name not in lst:
            lst.append(name)

    lines = diff.splitlines()
    # The side of each line: "+"/"-" lines of hunks, with the sign stripped.
    changed: list[str] = []
    changed_idx: list[int] = []
    in_hunk = False
    for ln in lines:
        if ln.startswith("diff --git "):
            in_hunk = False
            parts = ln.split()
            if len(parts) >= 4:
                add(files, parts[3][2:] if parts[3].startswith("b/") else parts[3])
            continue
        if ln.startswith("+++ ") or ln.startswith("--- "):
            if not in_hunk:
                name = ln[4:].split("\t")[0].strip()
                if name != "/dev/null":
                    add(files, name[2:] if name[:2] in ("a/", "b/") else name)
                continue
        m = _HUNK_RE.match(ln)
        if m:
            in_hunk = True
            ctx = m.group(1).strip()
            sm = _SYSCALL_RE.search(ctx)
            if sm:
                add(funcs, "__do_sys_" + sm.group(1))
            elif ctx and not ctx.rstrip().endswith(";"):
                cm = _CALL_RE.search(ctx)
                if cm and cm.group(1) not in _NOT_FUNCS and "=" not in ctx[: cm.start()]:
                    add(funcs, cm.group(1))
            continue
        if in_hunk and ln[:1] in ("+", "-"):
            changed.append(ln[1:])
            changed_idx.append(len(changed) - 1)
        elif in_hunk and ln[:1] == " ":
            changed.append(ln[1:])
        elif in_hunk and ln.startswith("-- "):
            in_hunk = False
    for i in changed_idx:
        add(funcs, _definition_name(changed, i))
    return files, funcs


def _body_text(msg: email.message.EmailMessage) -> str:
    """The text of a message: its plain-text parts and inline patch attachments."""
    parts = []
    for part in msg.walk() if msg.is_multipart() else [msg]:
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype.startswith("text/") or ctype in ("application/x-patch", "application/octet-stream"):
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            try:
                parts.append(payload.decode(charset, errors="replace"))
            except LookupError:
                parts.append(payload.decode("utf-8", errors="replace"))
    return "\n".join(parts)


def _read_message(msg: email.message.EmailMessage) -> PatchInfo:
    subject = str(msg.get("subject") or "")
    prefix, subj = split_subject(subject)
    body = _body_text(msg)
    author = str(msg.get("from") or "") or None
    # format-patch puts the real author first in the body when the sender differs.
    first = next((ln for ln in body.splitlines() if ln.strip()), "")
    if first.startswith("From: "):
        author = first[6:].strip()
    mid = msg.get("message-id")
    mid = str(mid).strip().strip("<>").strip() if mid else None
    files, funcs = diff_functions(body)
    date = msg.get("date")
    return PatchInfo(
        subject=subj,
        prefix=prefix,
        author=author,
        date=str(date) if date else None,
        message_id=mid or None,
        files=files,
        functions=funcs,
    )


def parse_patch_text(data: bytes, path: str = "<patch>") -> PatchInfo:
    """Read a patch or a series from the bytes of a format-patch file or an mbox."""
    if not data.strip():
        raise PatchError(f"{path}: empty file")
    policy = email.policy.default
    if data.startswith(b"From "):
        chunks = re.split(rb"(?m)^From \S+ .*\n", data)
        msgs = [email.message_from_bytes(c, policy=policy) for c in chunks if c.strip()]
    else:
        msgs = [email.message_from_bytes(data, policy=policy)]
    infos = [_read_message(m) for m in msgs if m.get("subject") is not None or m.get("from") is not None]
    if not infos:
        # A bare diff with no mail headers: files and functions only.
        files, funcs = diff_functions(data.decode("utf-8", errors="replace"))
        if not files:
            raise PatchError(f"{path}: neither a mail with a patch nor a unified diff")
        return PatchInfo(subject=Path(path).name, files=files, functions=funcs, path=path)
    main = infos[0]
    for info in infos:
        m = _SERIES_RE.search(info.prefix)
        if m and m.group(1).lstrip("0") == "":
            main = info  # the cover letter, 0/n
            break
    files: list[str] = []
    funcs: list[str] = []
    for info in infos:
        files += [f for f in info.files if f not in files]
        funcs += [f for f in info.functions if f not in funcs]
    return PatchInfo(
        subject=main.subject,
        prefix=main.prefix,
        author=main.author,
        date=main.date,
        message_id=main.message_id,
        files=files,
        functions=funcs,
        messages=len(infos),
        path=path,
    )


def read_patch(path: str | Path) -> PatchInfo:
    """Read a ``git format-patch`` file or an mbox (one patch or a series)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise PatchError(f"{p}: cannot read: {e.strerror or e}") from None
    return parse_patch_text(data, str(p))
