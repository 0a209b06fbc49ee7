"""Corpus loading, the shared article split rule and a legal-text sentence splitter (no ML deps)."""
import hashlib, json, re
from pathlib import Path

EU_FILES = {
    "eu-ai-act": "eu-ai-act/eu_ai_act_2024-1689_units.jsonl",
    "gdpr": "gdpr/gdpr_regulation_2016-679_units.jsonl",
    "nis2": "nis2/nis2_directive_2022-2555_units.jsonl",
    "dora": "dora/dora_regulation_2022-2554_units.jsonl",
    "cra": "cra/cra_regulation_2024-2847_units.jsonl",
}
SPLIT_RULE = ("K = f'{doc}:{unit_id}'; h = int(sha256(K).hexdigest()[:8], 16) % 10; h in {0,1} -> test, h == 2 -> dev, "
              "else train. unit_id: EU art_N/rct_N/anx_<roman lower>; CSF category (GV.SC) or function (GV); AI RMF "
              "category 'GOVERN-1'; AI 600-1 risk_N; AI 600-1 suggested actions take the strictest of "
              "nist-ai-600-1:<CAT-N> and nist-ai-rmf:<CAT-N>.")


def split_of_key(key: str) -> str:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10
    return "test" if h in (0, 1) else ("dev" if h == 2 else "train")


_ORDER = {"test": 0, "dev": 1, "train": 2}


def strictest(keys):
    return min((split_of_key(k) for k in keys), key=_ORDER.get)


def norm_unit_id(uid: str) -> str:
    return uid.lower()  # art_33, rct_12, anx_iii


# ---------------------------------------------------------------- sentence splitting
_ABBR = r"(?:e\.g|i\.e|etc|Art|Arts|No|Nos|p|pp|para|paras|OJ|cf|vs|Mr|Ms|Dr|St|approx|incl|Ltd|Inc|Co|Reg|Dir)"
_SENT_END = re.compile(r"(?<=[.;!?])\s+(?=[A-Z(‘“\"])")
_POINT = re.compile(r"^(?:-\s*)?\(([a-z]{1,4}|[0-9]{1,3})\)\s+")
_PARA = re.compile(r"^(?:-\s*)?([0-9]{1,3})\.\s+")
_FOOT = re.compile(r"\\\[[^\]]*\\\]|\[\^\d+\]")


def _clean(s: str) -> str:
    s = _FOOT.sub("", s)
    s = s.replace("**", "").replace("\\", "")
    s = re.sub(r"\s+", " ", s).strip()
    return s


def _split_block(text: str):
    """Split a paragraph block into sentences; protects abbreviations, 'Article 33(1).', numbers like '1.5'."""
    prot = re.sub(r"\b(" + _ABBR + r")\.", lambda m: m.group(1) + "\x00", text)
    parts, out = _SENT_END.split(prot), []
    for p in parts:
        p = p.replace("\x00", ".").strip()
        if not p:
            continue
        # a part ending with ';' is a list item continuation only if the next begins with '(' -> keep separate anyway
        if out and (len(p) < 15 or re.match(r"^[a-z]", p)):
            out[-1] = out[-1] + " " + p
        else:
            out.append(p)
    return out


def split_sentences(text: str):
    """Return clause sentences of a unit's text. List points become 'chapeau … point' sentences."""
    lines = [l.rstrip() for l in text.split("\n")]
    sents, chapeau, _para = [], None, None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("|"):
            continue
        mpara = _PARA.match(line)
        if mpara and not raw.startswith(" "):
            mpara.group(1)
            line = line[mpara.end():]
            chapeau = None
        mpt = _POINT.match(line)
        if mpt:
            body = _clean(line[mpt.end():])
            if len(body) < 8:
                continue
            body = body.rstrip(";,").rstrip()
            if body.endswith((" and", " or")):
                body = body.rsplit(" ", 1)[0].rstrip(";, ")
            if chapeau:
                s = chapeau.rstrip(":").rstrip() + ": " + body
            else:
                s = body
            if not s.endswith("."):
                s += "."
            sents.append(s[0].upper() + s[1:])
            if body.endswith(":"):
                pass
            continue
        line = _clean(line)
        if len(line) < 8:
            continue
        bs = _split_block(line)
        sents.extend(b for b in bs if not b.endswith(":"))
        if line.endswith(":"):
            chapeau = bs[-1] if bs else line
        else:
            chapeau = None
    return [s for s in sents if 20 <= len(s)]


# ---------------------------------------------------------------- corpus
def load_units(corpus_dir):
    """Yield dicts: doc, key (split key), unit_id, title, text, sentences, split."""
    C = Path(corpus_dir)
    units = []
    for doc, rel in EU_FILES.items():
        for l in open(C / rel, encoding="utf-8"):
            r = json.loads(l)
            uid = norm_unit_id(r["unit_id"])
            key = f"{doc}:{uid}"
            units.append(dict(doc=doc, key=key, unit_id=uid, type=r["type"], title=r.get("title", ""),
                              text=r["text"], split=split_of_key(key)))
    for l in open(C / "nist-csf-2.0/nist_csf_2.0_core.jsonl", encoding="utf-8"):
        r = json.loads(l)
        cat = r["id"].split("-")[0]
        key = f"nist-csf-2.0:{cat}"
        txt = r["text"]
        if r.get("name"):
            txt = f"{r['name']} ({r['id']}): {txt}"
        units.append(dict(doc="nist-csf-2.0", key=key, unit_id=r["id"], type=r["type"], title=r.get("name", ""),
                          text=txt.rstrip(".") + ".", split=split_of_key(key)))
    for l in open(C / "nist-ai-rmf/nist_ai_rmf_1.0_core.jsonl", encoding="utf-8"):
        r = json.loads(l)
        if not r["text"]:
            continue
        cat = r["id"] if r["type"] == "category" else r.get("category", r["id"])
        key = "nist-ai-rmf:" + cat.replace(" ", "-")
        units.append(dict(doc="nist-ai-rmf", key=key, unit_id=r["id"], type=r["type"], title="",
                          text=r["text"], split=split_of_key(key)))
    for l in open(C / "nist-ai-600-1/nist_ai_600-1_gai_risks.jsonl", encoding="utf-8"):
        r = json.loads(l)
        key = f"nist-ai-600-1:risk_{r['risk_id']}"
        units.append(dict(doc="nist-ai-600-1", key=key, unit_id=f"risk_{r['risk_id']}", type="risk", title=r["name"],
                          text=f"{r['name']}: {r['definition']}", split=split_of_key(key)))
    for l in open(C / "nist-ai-600-1/nist_ai_600-1_suggested_actions.jsonl", encoding="utf-8"):
        r = json.loads(l)
        cat = r["subcategory_id"].rsplit(".", 1)[0].replace(" ", "-")
        keys = [f"nist-ai-600-1:{cat}", f"nist-ai-rmf:{cat}"]
        units.append(dict(doc="nist-ai-600-1", key=keys[0], unit_id=r["action_id"], type="action", title="",
                          text=r["suggested_action"], split=strictest(keys)))
    for u in units:
        u["sentences"] = split_sentences(u["text"]) if u["doc"] in EU_FILES else [_clean(u["text"])]
    return units
