"""Patch metadata for the report: git format-patch files and mboxes from the list."""

from __future__ import annotations

import pytest

from tracekit.reports.patch import PatchError, parse_patch_text, read_patch, split_subject


@pytest.fixture
def patches(corpus):
    return corpus / "kbuild-x86_64-6.1.192" / "patches"


def test_format_patch_0001(patches):
    p = read_patch(patches / "0001-mm-reenact-non-preemptible-pagetable-freeing.patch")
    # From the file's headers (Subject is folded over two lines there).
    assert p.prefix == "PATCH"
    assert p.subject == "mm: re-enact non-preemptible pagetable freeing in exit_mmap (2.6.22 style)"
    assert p.author == "tracekit lab <tracekit-lab@localhost>"
    assert p.date == "Thu, 26 Nov 2026 01:26:37 +0000"
    # format-patch without --thread writes no Message-ID, so there is no Link.
    assert p.message_id is None and p.link is None
    # diffstat: " mm/mmap.c | 9 +++++++++"; one hunk, "@@ ... @@ void exit_mmap(...)".
    assert p.files == ["mm/mmap.c"]
    assert p.functions == ["exit_mmap"]


def test_format_patch_0002(patches):
    p = read_patch(patches / "0002-mm-variant-C-preemptible-unlink-nonpreemptible-pgtable-free.patch")
    # diffstat: mm/internal.h, mm/memory.c, mm/mmap.c
    assert p.files == ["mm/internal.h", "mm/memory.c", "mm/mmap.c"]
    # grep '^@@': folio_activate (a prototype ending in ';' in internal.h: not a function
    # the diff changes), free_pgd_range, free_pgtables (x3), exit_mmap.  grep '^[-+][a-z]'
    # for definitions: -void free_pgtables(, +static void __free_pgtables(,
    # +void free_pgtables(, +void free_pgtables_unlinked( (its internal.h prototype ends
    # in ');').
    assert set(p.functions) == {
        "free_pgd_range",
        "free_pgtables",
        "exit_mmap",
        "__free_pgtables",
        "free_pgtables_unlinked",
    }
    assert "folio_activate" not in p.functions


MBOX = b"""From hugh@veritas.com Mon Jul 16 10:00:00 2007
From: =?UTF-8?q?J=C3=B6rg_R=C3=B6del?= <joro@example.org>
Subject: [RFC PATCH v2 0/2] =?UTF-8?q?mm=3A_r=C3=A9duce?=
 pagetable-freeing latencies
Message-ID: <cover.1184576400.git.joro@example.org>
Date: Mon, 16 Jul 2007 10:00:00 +0100

Cover letter.

From hugh@veritas.com Mon Jul 16 10:00:01 2007
From: Sender Name <sender@example.org>
Subject: [RFC PATCH v2 1/2] mm: free_pgtables preemptible
Message-ID: <1.1184576400.git.joro@example.org>
Date: Mon, 16 Jul 2007 10:00:01 +0100

From: Hugh Dickins <hugh@veritas.com>

Body.
---
diff --git a/mm/memory.c b/mm/memory.c
--- a/mm/memory.c
+++ b/mm/memory.c
@@ -270,6 +270,8 @@ void free_pgtables(struct mmu_gather **tlb, struct vm_area_struct *vma,
 \tx;
+\tcond_resched();
 \ty;
diff --git a/mm/mprotect.c b/mm/mprotect.c
--- a/mm/mprotect.c
+++ b/mm/mprotect.c
@@ -10,3 +10,4 @@ SYSCALL_DEFINE3(mprotect, unsigned long, start, size_t, len,
 \tx;
+\ty;
-- 
1.5.2

From hugh@veritas.com Mon Jul 16 10:00:02 2007
From: Hugh Dickins <hugh@veritas.com>
Subject: [RFC PATCH v2 2/2] mm: new helper
Message-ID: <2.1184576400.git.joro@example.org>

---
diff --git a/mm/memory.c b/mm/memory.c
--- a/mm/memory.c
+++ b/mm/memory.c
@@ -300,6 +300,12 @@ static int foo(void)
 \treturn 0;
 }
+static inline unsigned long
+helper_free(struct mmu_gather *tlb,
+\t    int x)
+{
+\tint y = bar(x);
+}
"""


def test_mbox_series_rfc2047_and_link():
    p = parse_patch_text(MBOX, "series.mbox")
    assert p.messages == 3
    # The cover letter (0/2) gives subject and Message-ID; RFC 2047 decoded and unfolded.
    assert p.prefix == "RFC PATCH v2 0/2"
    assert p.subject == "mm: r\u00e9duce pagetable-freeing latencies"
    assert p.author == "J\u00f6rg R\u00f6del <joro@example.org>"
    assert p.message_id == "cover.1184576400.git.joro@example.org"
    assert p.link == "https://lore.kernel.org/r/cover.1184576400.git.joro@example.org"
    assert p.files == ["mm/memory.c", "mm/mprotect.c"]
    # Hunk headers (free_pgtables, SYSCALL_DEFINE3(mprotect -> __do_sys_mprotect, foo) and
    # an added definition whose name is on the line after its return type is not found
    # (kernel style puts "type name(" on one line); "int y = bar(x);" is no definition.
    assert p.functions == ["free_pgtables", "__do_sys_mprotect", "foo"]


def test_body_from_line_is_the_author():
    one = MBOX.split(b"\nFrom hugh@veritas.com Mon Jul 16 10:00:01 2007\n")[1].split(b"\nFrom hugh@")[0]
    p = parse_patch_text(one, "one.patch")
    assert p.author == "Hugh Dickins <hugh@veritas.com>"
    assert p.prefix == "RFC PATCH v2 1/2"


def test_split_subject():
    assert split_subject("Re: [RFC PATCH v2 1/3] mm:  foo\n bar") == ("RFC PATCH v2 1/3", "mm: foo bar")
    assert split_subject("[PATCH] [RFC] x") == ("PATCH RFC", "x")
    assert split_subject("no prefix") == ("", "no prefix")


def test_bad_inputs(tmp_path):
    empty = tmp_path / "empty.patch"
    empty.write_bytes(b"")
    with pytest.raises(PatchError, match="empty"):
        read_patch(empty)
    with pytest.raises(PatchError, match="cannot read"):
        read_patch(tmp_path / "missing.patch")
    junk = tmp_path / "junk.patch"
    junk.write_bytes(b"\x00\x01 not a patch\n")
    with pytest.raises(PatchError, match="neither"):
        read_patch(junk)
