"""Checks, with pypdf (an independent PDF reader), that the access report's PDF is tagged for
screen readers, so that tests/audit.rs can assert it from outside our writer:

- the catalog is marked (/MarkInfo /Marked true), says its language (/Lang), asks viewers
  to show the title (/ViewerPreferences /DisplayDocTitle true), and the title in /Info is
  the XMP dc:title;
- the structure tree: every element's kids exist and name it as their parent; every
  marked-content sequence (MCID) in a page's content is referenced by exactly one element,
  on that page, and the parent tree (through the page's /StructParents) maps it back to
  that element; every text-showing operator is inside marked content (tagged or artifact);
- the tagged text, in structure-tree order, equals pypdf's extracted text of the pages
  without the artifacts (the page footers): reading order is extraction order.

Prints `ROLES` (the Document's children), `ITEMS` (list items per list), `TITLE`, `PAGES`,
then `OK`. Exits non-zero with the first failure."""
import sys

from pypdf import PdfReader
from pypdf.generic import ArrayObject, ContentStream, DictionaryObject, IndirectObject


def fail(message):
    print(f"FAIL {message}", file=sys.stderr)
    sys.exit(1)


def number_tree(node, out):
    """Flattens a number tree (/Nums leaves, /Kids inner nodes) into `out`."""
    node = node.get_object()
    nums = node.get("/Nums")
    if nums is not None:
        for i in range(0, len(nums), 2):
            out[int(nums[i])] = nums[i + 1].get_object()
    for kid in node.get("/Kids", []):
        number_tree(kid, out)


def shown_text(operands, operator):
    """The bytes a text-showing operator shows."""
    if operator in (b"Tj", b"'"):
        return [bytes(operands[0].original_bytes)]
    if operator == b'"':
        return [bytes(operands[2].original_bytes)]
    if operator == b"TJ":
        return [bytes(o.original_bytes) for o in operands[0] if hasattr(o, "original_bytes")]
    return []


def marked_runs(reader, page):
    """The page's marked content in stream order: (mcid, text) for tagged runs, and the text
    of artifacts; fails on text outside any marked content."""
    content = ContentStream(page.get_contents(), reader)
    stack = []  # ("mcid", n) or ("artifact",) or ("other",) per open BDC/BMC
    runs, artifacts = [], []
    for operands, operator in content.operations:
        if operator in (b"BDC", b"BMC"):
            tag = operands[0]
            props = operands[1] if operator == b"BDC" else None
            if tag == "/Artifact":
                stack.append(("artifact",))
            elif isinstance(props, DictionaryObject) and "/MCID" in props:
                stack.append(("mcid", int(props["/MCID"]), str(tag)))
                runs.append([int(props["/MCID"]), str(tag), b""])
            else:
                stack.append(("other",))
        elif operator == b"EMC":
            if not stack:
                fail("EMC without BDC")
            stack.pop()
        else:
            shown = b"".join(shown_text(operands, operator))
            if not shown and operator not in (b"Tj", b"TJ", b"'", b'"'):
                continue
            kinds = [s[0] for s in stack]
            if "artifact" in kinds:
                artifacts.append(shown.decode("cp1252"))
            elif "mcid" in kinds:
                runs[-1][2] += shown
            else:
                fail(f"untagged text {shown!r}")
    if stack:
        fail("unclosed marked content")
    return [(mcid, tag, text.decode("cp1252")) for mcid, tag, text in runs], artifacts


def main():
    reader = PdfReader(sys.argv[1], strict=True)
    root = reader.trailer["/Root"]
    mark = root.get("/MarkInfo", {})
    if mark.get("/Marked") != True:  # noqa: E712 (a pypdf BooleanObject)
        fail("catalog is not /MarkInfo << /Marked true >>")
    lang = root.get("/Lang")
    if not lang or not str(lang).startswith("en"):
        fail(f"catalog /Lang is {lang!r}")
    if root.get("/ViewerPreferences", {}).get("/DisplayDocTitle") != True:  # noqa: E712
        fail("title is not displayed (/DisplayDocTitle)")
    title = reader.metadata.title if reader.metadata else None
    xmp = reader.xmp_metadata
    xmp_title = xmp.dc_title.get("x-default") if xmp and xmp.dc_title else None
    if not title or title != xmp_title:
        fail(f"/Info /Title {title!r} is not the XMP dc:title {xmp_title!r}")

    tree = root.get("/StructTreeRoot")
    if tree is None:
        fail("no /StructTreeRoot")
    tree = tree.get_object()
    parent_tree = {}
    number_tree(tree["/ParentTree"], parent_tree)
    page_index = {p.indirect_reference.idnum: i for i, p in enumerate(reader.pages)}

    # Walk the structure tree depth first: the order a screen reader reads.
    order = []  # (page, mcid, element idnum, role)
    roles = {}

    def walk(ref, parent_ref):
        elem = ref.get_object()
        if elem.get("/Type", "/StructElem") != "/StructElem":
            fail(f"kid {ref} is not a structure element")
        if elem.raw_get("/P").idnum != parent_ref.idnum:
            fail(f"element {ref.idnum} does not name its parent {parent_ref.idnum}")
        role = str(elem["/S"])[1:]
        roles[ref.idnum] = role
        kids = elem.raw_get("/K")
        kids = kids if isinstance(kids, ArrayObject) else [kids]
        for kid in kids:
            if isinstance(kid, IndirectObject):
                walk(kid, ref)
                continue
            kid = kid.get_object() if hasattr(kid, "get_object") else kid
            if isinstance(kid, DictionaryObject) and kid.get("/Type") == "/MCR":
                page = kid.raw_get("/Pg") if "/Pg" in kid else elem.raw_get("/Pg")
                order.append((page_index[page.idnum], int(kid["/MCID"]), ref.idnum, role))
            elif isinstance(kid, int):
                order.append((page_index[elem.raw_get("/Pg").idnum], int(kid), ref.idnum, role))
            else:
                fail(f"unknown kid {kid!r} of element {ref.idnum}")

    top = tree.raw_get("/K")
    tops = top if isinstance(top, ArrayObject) else [top]
    for t in tops:
        walk(t, tree.indirect_reference)
    if len(tops) != 1 or roles[tops[0].idnum] != "Document":
        fail("the tree's root is not one Document element")
    doc = tops[0].get_object()
    children = [k.get_object()["/S"][1:] for k in doc.raw_get("/K") if isinstance(k, IndirectObject)]

    seen = set()
    for page, mcid, elem, role in order:
        if (page, mcid) in seen:
            fail(f"MCID {mcid} on page {page + 1} referenced twice")
        seen.add((page, mcid))
    if int(tree["/ParentTreeNextKey"]) <= max(parent_tree, default=-1):
        fail("/ParentTreeNextKey is not past the parent tree's keys")

    tagged_text, texts_in_tree_order = [], {}
    for i, page in enumerate(reader.pages):
        key = page.get("/StructParents")
        if key is None:
            fail(f"page {i + 1} has no /StructParents")
        parents = parent_tree.get(int(key))
        if parents is None:
            fail(f"page {i + 1}'s /StructParents {key} is not in the parent tree")
        runs, artifacts = marked_runs(reader, page)
        if [m for m, _, _ in runs] != list(range(len(parents))):
            fail(f"page {i + 1}: MCIDs {[m for m, _, _ in runs]} vs parent tree of {len(parents)}")
        for mcid, tag, text in runs:
            if (i, mcid) not in seen:
                fail(f"page {i + 1} MCID {mcid} is in no element")
            owner = next(e for p, m, e, _ in order if (p, m) == (i, mcid))
            if parents.get_object()[mcid].idnum != owner:
                fail(f"parent tree maps page {i + 1} MCID {mcid} to another element")
            if tag[1:] != roles[owner]:
                fail(f"page {i + 1} MCID {mcid} is marked {tag}, its element is {roles[owner]}")
            texts_in_tree_order[(i, mcid)] = text
        # Reading order is extraction order: pypdf's text without the footer is the tagged
        # runs of this page, in the structure tree's order, one per line.
        extracted = [line for line in page.extract_text().split("\n") if line not in artifacts]
        in_tree = [texts_in_tree_order[(p, m)] for p, m, _, _ in order if p == i]
        tagged_text.extend(in_tree)
        if extracted != in_tree:
            at = next((n for n, (x, t) in enumerate(zip(extracted, in_tree)) if x != t),
                      min(len(extracted), len(in_tree)))
            fail(f"page {i + 1}, line {at + 1}: extracted {extracted[at:at + 1]!r}, "
                 f"tagged {in_tree[at:at + 1]!r} ({len(extracted)} vs {len(in_tree)} lines)")
    if len(seen) != len(texts_in_tree_order):
        fail("the structure tree references marked content that is not on its page")
    # The tree's order is the pages' order.
    if [(p, m) for p, m, _, _ in order] != sorted((p, m) for p, m, _, _ in order):
        fail("the structure tree's order is not the content's order")

    lists = [k.get_object() for k in doc.raw_get("/K") if k.get_object()["/S"] == "/L"]
    print("ROLES " + " ".join(children))
    print("ITEMS " + " ".join(str(sum(1 for k in l.raw_get("/K") if k.get_object()["/S"] == "/LI")) for l in lists))
    print(f"TITLE {title}")
    print(f"PAGES {len(reader.pages)}")
    print(f"RUNS {len(order)}")
    print("OK")


main()
