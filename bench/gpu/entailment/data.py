#!/usr/bin/env python3
"""Build train/dev/test NLI pairs (premise = clause sentence, hypothesis = claim) for the entailment cross-encoder.

  python bench/gpu/entailment/data.py [--corpus ../shared/data/corpus] [--packs policies/packs] --out OUT/

Sources (field `source`):
  hand        hand-written paraphrase / contradiction / close-neutral claims (data/hand_*.jsonl), resolved to the
              corpus sentence by an anchor substring
  hand_num    number-format variants of hand claims (72 hours -> three days keeps the label; a wrong quantity in
              everyday words -> contradicted)
  hand_actor  actor swaps of entailed hand claims (provider<->deployer, controller<->processor, ...) -> contradicted
  hand_neg    negated / polarity-flipped entailed hand claims -> contradicted
  hand_xpair  hand claims paired with another clause (same article other paragraph, or lexically closest clause of
              another article / act) -> neutral
  pert_*      perturbations of corpus sentences (entailed: verbatim, shall->must, dropped clause; contradicted:
              number/date/actor/modal swaps; neutral: sibling list point / random other clause)
  pack        policy-pack 'violates' examples paired with the closest sentence of the cited (train-split) article
Split is by top-level unit key (see corpus_utils.split_of_key); test-split text never reaches train/dev files.
"""
import argparse, gzip, hashlib, json, math, random, re, sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_utils import load_units, split_of_key, SPLIT_RULE  # noqa: E402

LABELS = ["entailed", "contradicted", "neutral"]
# --------------------------------------------------------------------------- split (shared rule)


def split_of(key: str) -> str:
    """Deterministic article split shared with the independent test writer.
    K = f"{doc}:{unit_id}"; h = int(sha256(K)[:8], 16) % 10; {0,1} -> test, 2 -> dev, else train."""
    return split_of_key(key)


# --------------------------------------------------------------------------- numbers
W2N = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
       "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "fifteen": 15, "twenty": 20,
       "twenty-four": 24, "thirty": 30, "forty-eight": 48, "seventy-two": 72, "half a": 0.5}
N2W = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten",
       12: "twelve", 14: "fourteen", 15: "fifteen", 20: "twenty", 24: "twenty-four", 30: "thirty", 48: "forty-eight",
       72: "seventy-two"}
UNIT_H = {"hour": 1, "day": 24, "week": 168, "month": 730, "year": 8760}
DUR = re.compile(r"\b(\d+|half a|twenty-four|forty-eight|seventy-two|an?|one|two|three|four|five|six|seven|eight|nine|"
                 r"ten|eleven|twelve|fourteen|fifteen|twenty|thirty)[ -](hour|day|week|month|year)s?\b", re.I)


def _dur_val(m):
    v = m.group(1).lower()
    return (float(v) if v.isdigit() else W2N[v]), m.group(2).lower()


def _fmt(n, unit, words=False, article=False):
    n = int(n) if float(n).is_integer() else n
    if n == 0.5:
        return f"half a {unit}"
    if n == 1:
        return f"{'a' if article else 'one'} {unit}"
    s = N2W.get(n, str(n)) if words else str(n)
    return f"{s} {unit}s"


def equivalent_forms(n, unit):
    """Surface forms denoting exactly the same duration (never month<->30 days)."""
    hours = n * UNIT_H[unit]
    forms = {_fmt(n, unit), _fmt(n, unit, words=True), _fmt(n, unit, article=True)}
    if unit == "hour" and hours % 24 == 0:
        d = hours // 24
        forms |= {_fmt(d, "day", words=True), _fmt(d, "day", article=True)}
    if unit == "day" and n % 7 == 0:
        forms |= {_fmt(n // 7, "week", words=True), _fmt(n // 7, "week", article=True)}
    if unit == "day" and n <= 3:
        forms |= {_fmt(n * 24, "hour"), }
    if unit == "week" and n <= 2:
        forms |= {_fmt(n * 7, "day")}
    if unit == "year" and n == 10:
        forms |= {"a decade"}
    if unit == "month" and n == 12:
        forms |= {"a year", "one year"}
    if unit == "month" and n == 6:
        forms |= {"half a year"}
    if unit == "year" and n == 1:
        forms |= {"twelve months", "12 months"}
    return sorted(forms)


WRONG_DUR = ["24 hours", "48 hours", "72 hours", "a day", "two days", "three days", "five days", "a week",
             "10 days", "two weeks", "14 days", "15 days", "one month", "three months", "six months", "a year",
             "two years", "three years", "five years", "ten years", "20 years"]


def _dur_hours(s):
    m = DUR.search(s)
    if not m:
        return None
    n, u = _dur_val(m)
    return n * UNIT_H[u]


def wrong_forms(n, unit, rng, k=2):
    h = n * UNIT_H[unit]
    cands = [w for w in WRONG_DUR if _dur_hours(w) not in (None, h)]
    # prefer nearby magnitudes (everyday plausible mistakes)
    cands.sort(key=lambda w: abs(math.log((_dur_hours(w) + 1) / (h + 1))))
    pool = cands[:6]
    rng.shuffle(pool)
    return pool[:k]


MONEY = re.compile(r"(€\s?|EUR\s?)(\d+(?:[.,]\d+)?)\s?(million)\b|(\d+(?:[.,]\d+)?) million (?:euros|EUR)", re.I)
PCT = re.compile(r"\b(\d+(?:[.,]\d+)?)\s?(%|percent\b|per cent\b)")
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DATE = re.compile(r"\b(\d{1,2}) (" + "|".join(MONTHS) + r") (\d{4})\b")
YEARNUM = re.compile(r"\b(\d+)(?= years?\b)")


def number_variants(text, rng):
    """Return (equivalent_rewrites, wrong_rewrites) of a claim's quantities."""
    eq, wr = set(), set()
    for m in DUR.finditer(text):
        n, u = _dur_val(m)
        for f in equivalent_forms(n, u):
            if f.lower() != m.group(0).lower():
                eq.add(text[:m.start()] + f + text[m.end():])
        for f in wrong_forms(n, u, rng):
            wr.add(text[:m.start()] + f + text[m.end():])
    for m in MONEY.finditer(text):
        v = m.group(2) or m.group(4)
        eq.add(text[:m.start()] + f"EUR {v} million" + text[m.end():])
        eq.add(text[:m.start()] + f"{v} million euros" + text[m.end():])
        try:
            fv = float(v.replace(",", "."))
            eq.add(text[:m.start()] + f"€{int(fv * 1_000_000):,}" + text[m.end():])
        except ValueError:
            pass
        alt = rng.choice([x for x in ["5", "7", "7.5", "10", "15", "20", "35"] if x != v])
        wr.add(text[:m.start()] + f"€{alt} million" + text[m.end():])
    for m in PCT.finditer(text):
        v = m.group(1)
        eq.add(text[:m.start()] + f"{v} percent" + text[m.end():])
        alt = rng.choice([x for x in ["1", "1.4", "2", "2.5", "3", "4", "7", "10"] if x != v.replace(",", ".")])
        wr.add(text[:m.start()] + f"{alt}%" + text[m.end():])
    for m in DATE.finditer(text):
        d, mo, y = m.groups()
        eq.add(text[:m.start()] + f"{mo} {int(d)}, {y}" + text[m.end():])
        eq.add(text[:m.start()] + f"{int(d)} {mo} {y}" .replace(f"{int(d)} ", f"{int(d)} ", 1) + text[m.end():])
        wy = str(int(y) + rng.choice([-2, -1, 1, 2]))
        wr.add(text[:m.start()] + f"{d} {mo} {wy}" + text[m.end():])
        wm = rng.choice([x for x in MONTHS if x != mo])
        wr.add(text[:m.start()] + f"{d} {wm} {y}" + text[m.end():])
    eq.discard(text)
    wr.discard(text)
    return sorted(eq), sorted(wr)


# --------------------------------------------------------------------------- actor swaps / negation
ACTORS = [("provider", "deployer"), ("controller", "processor"), ("essential entit", "important entit"),
          ("manufacturer", "importer"), ("data subject", "supervisory authority"), ("Commission", "Member States"),
          ("market surveillance authorit", "notified bod")]
_NOT_ACTOR_CTX = r"(?<!service )(?<!ICT )(?<!third-party )"


def actor_swaps(hyp, premise):
    out = []
    pl = premise.lower()
    for a, b in ACTORS:
        for src, dst in ((a, b), (b, a)):
            pat = _NOT_ACTOR_CTX + r"\b" + re.escape(src) + r"(?!y)"
            if re.search(pat, hyp, re.I) and dst.lower() not in pl and \
                    not re.search(r"\b" + re.escape(dst), hyp, re.I) and "service provider" not in hyp.lower():
                def rep(m, dst=dst):
                    s = m.group(0)
                    return dst[0].upper() + dst[1:] if s[0].isupper() else dst
                out.append(re.sub(pat, rep, hyp, flags=re.I))
    return out


NEG_RULES = [
    (r"\bmust not\b", "may"), (r"\bmust\b", "need not"), (r"\bhas to\b", "does not have to"),
    (r"\bhave to\b", "do not have to"), (r"\bneeds to\b", "does not need to"), (r"\bneed to\b", "do not need to"),
    (r"\bcannot\b", "can"), (r"\bcan't\b", "can"), (r"\bcan\b", "cannot"), (r"\bshould not\b", "should"),
    (r"\bshould\b", "should not"), (r"\bis prohibited\b", "is permitted"), (r"\bare prohibited\b", "are permitted"),
    (r"\bbanned\b", "allowed"), (r"\bbans\b", "allows"), (r"\bis required\b", "is not required"),
    (r"\bare required\b", "are not required"), (r"\brequires\b", "does not require"), (r"\bis allowed\b",
                                                                                      "is prohibited"),
    (r"\bdoesn't\b", "does"), (r"\bdon't\b", "do"), (r"\bshall\b", "shall not"), (r"\bmay\b", "may not")]


def negate(hyp):
    for pat, rep in NEG_RULES:
        if re.search(pat, hyp):
            return re.sub(pat, rep, hyp, count=1)
    return None


# --------------------------------------------------------------------------- corpus perturbations
def pert_entailed(s, rng):
    opts = [s]
    if " shall " in s:
        opts.append(s.replace(" shall ", " must ", 1))
    t = re.sub(r"\s*\([^()]{3,80}\)", "", s)
    if t != s:
        opts.append(t)
    t = re.sub(r", (where applicable|where appropriate|where feasible|inter alia|in particular|where necessary),", "", s)
    if t != s:
        opts.append(t)
    opts.append(rng.choice(["Under the regulation, ", "According to the law, ", "The rules say that "]) +
                s[0].lower() + s[1:])
    return rng.choice(opts[1:] if len(opts) > 1 and rng.random() < 0.8 else opts)


def pert_contra(s, rng):
    opts = []
    eq, wr = number_variants(s, rng)
    opts += wr
    for pat, rep in [(r"\bshall not\b", "shall"), (r"\bshall\b", "shall not"), (r"\bmay\b", "shall not"),
                     (r"\bprohibited\b", "permitted"), (r"\bhigh-risk\b", "not high-risk"),
                     (r"\bat least\b", "at most"), (r"\bwithout undue delay\b", "only at the end of the year"),
                     (r"\bonly if\b", "even if not")]:
        if re.search(pat, s):
            opts.append(re.sub(pat, rep, s, count=1))
    opts += actor_swaps(s, "")[:1] if not any(a in s.lower() for pair in ACTORS for a in pair[1:]) else []
    return rng.choice(opts) if opts else None


# --------------------------------------------------------------------------- similarity (bag of words)
STOP = set("the a an of to and or in for on by with is are be shall that which this as at from its their any such "
           "where under referred article paragraph point regulation directive".split())


def toks(s):
    return {w for w in re.findall(r"[a-z0-9]+", s.lower()) if w not in STOP and len(w) > 2}


def jacc(a, b):
    return len(a & b) / (len(a | b) or 1)


# --------------------------------------------------------------------------- build
def load_hand(path, by_key):
    items = []
    N = lambda s: re.sub(r"\s+", "", s).lower()  # noqa: E731
    for l in open(path, encoding="utf-8"):
        if not l.strip():
            continue
        r = json.loads(l)
        cands = [s for s in by_key.get(r["k"], []) if N(r["a"]) in N(s)]
        if not cands:
            print("WARN unresolved anchor", r["k"], r["a"], file=sys.stderr)
            continue
        r["premise"] = cands[0]
        items.append(r)
    return items


def expand_hand(items, split_sents, rng, variants=True, xpair=True):
    """split_sents: list of (key, sentence) of the same split (for cross-pair neutrals)."""
    out = []
    add = lambda p, h, y, src, k: out.append(dict(premise=p, hypothesis=h, label=y, source=src, key=k))  # noqa
    sent_toks = [(k, s, toks(s)) for k, s in split_sents]
    for it in items:
        P, K = it["premise"], it["k"]
        for h in it.get("e", []):
            add(P, h, "entailed", "hand", K)
        for h in it.get("c", []):
            add(P, h, "contradicted", "hand", K)
        for h in it.get("n", []):
            add(P, h, "neutral", "hand", K)
        if variants:
            for h in it.get("e", []):
                eq, wr = number_variants(h, rng)
                for v in rng.sample(eq, min(2, len(eq))):
                    add(P, v, "entailed", "hand_num", K)
                for v in rng.sample(wr, min(2, len(wr))):
                    add(P, v, "contradicted", "hand_num", K)
                for v in actor_swaps(h, P)[:1]:
                    add(P, v, "contradicted", "hand_actor", K)
                v = negate(h)
                if v and rng.random() < 0.5:
                    add(P, v, "contradicted", "hand_neg", K)
            for h in it.get("c", []):
                eq, _ = number_variants(h, rng)
                for v in rng.sample(eq, min(1, len(eq))):
                    add(P, v, "contradicted", "hand_num", K)
        if xpair:
            hyps = it.get("e", []) + it.get("c", [])
            pt = toks(P)
            # same article, other paragraph (lexically close) and other article/act (closest by overlap)
            same = [s for k, s, t in sent_toks if k == K and s[:80] != P[:80]]
            other = sorted(((jacc(pt, t), s) for k, s, t in sent_toks if k != K), reverse=True)[:8]
            for h in hyps:
                if same and rng.random() < 0.6:
                    add(rng.choice(same), h, "neutral", "hand_xpair", K)
                if other and rng.random() < 0.6:
                    add(rng.choice(other)[1], h, "neutral", "hand_xpair", K)
    return out


def corpus_pairs(units, split, rng, per_sent=1.0):
    out = []
    by_key = defaultdict(list)
    for u in units:
        if u["split"] == split:
            by_key[u["key"]].extend(u["sentences"])
    all_s = [(k, s) for k, ss in by_key.items() for s in ss]
    for k, ss in by_key.items():
        for i, s in enumerate(ss):
            if len(s) > 900 or rng.random() > per_sent:
                continue
            r = rng.random()
            if r < 0.34:
                out.append(dict(premise=s, hypothesis=pert_entailed(s, rng), label="entailed", source="pert_ent",
                                key=k))
            elif r < 0.67:
                h = pert_contra(s, rng)
                if h and h != s:
                    out.append(dict(premise=s, hypothesis=h, label="contradicted", source="pert_con", key=k))
            else:
                sib = [t for t in ss if t != s and t[:60] != s[:60]]
                close = [t for t in ss if t != s and t[:60] == s[:60]]  # sibling list points share a chapeau
                if close and rng.random() < 0.5:
                    out.append(dict(premise=s, hypothesis=rng.choice(close), label="neutral", source="pert_sib",
                                    key=k))
                elif sib and rng.random() < 0.6:
                    out.append(dict(premise=s, hypothesis=rng.choice(sib), label="neutral", source="pert_same",
                                    key=k))
                else:
                    k2, s2 = rng.choice(all_s)
                    if k2 != k:
                        out.append(dict(premise=s, hypothesis=s2, label="neutral", source="pert_rand", key=k))
    return out


def pack_pairs(packs_dir, units, rng):
    import yaml
    out = []
    sents = defaultdict(list)
    for u in units:
        sents[u["key"]].extend(u["sentences"])
    for f in sorted(Path(packs_dir).glob("*.yaml")):
        d = yaml.safe_load(open(f, encoding="utf-8"))
        for r in d.get("rules", []):
            provs = r.get("provisions", [])
            if not provs or any(p.startswith("nist") for p in provs):
                continue
            keys = {p.split(":")[0] + ":" + p.split(":")[1].split(".")[0].lower() for p in provs}
            if any(split_of(k) != "train" for k in keys):
                continue
            cand = [(k, s) for k in keys for s in sents.get(k, [])]
            if not cand:
                continue
            for ex in r.get("examples", []):
                if ex.get("label") != "violates":
                    continue
                t = toks(ex["text"])
                k, s = max(cand, key=lambda ks: jacc(t, toks(ks[1])))
                out.append(dict(premise=s, hypothesis=ex["text"].strip(), label="contradicted", source="pack", key=k))
    return out


def write_jsonl(path, rows, gz=False):
    op = gzip.open if gz else open
    with op(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[3].parent / "shared" / "data" / "corpus"))
    ap.add_argument("--packs", default=str(Path(__file__).resolve().parents[3] / "policies" / "packs"))
    ap.add_argument("--out", default="data/")
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    out = Path(a.out)
    here = Path(__file__).resolve().parent / "data"
    units = load_units(a.corpus)
    by_key = defaultdict(list)
    for u in units:
        by_key[u["key"]].extend(u["sentences"])
    split_sents = defaultdict(list)
    for u in units:
        for s in u["sentences"]:
            split_sents[u["split"]].append((u["key"], s))

    # train
    hand_tr = []
    for p in sorted(here.glob("hand_train_*.jsonl")):
        hand_tr += load_hand(p, by_key)
    assert all(split_of(it["k"]) == "train" for it in hand_tr), "hand train item outside train split"
    tr = expand_hand(hand_tr, split_sents["train"], rng)
    tr += corpus_pairs(units, "train", rng, per_sent=0.7)
    if a.packs and Path(a.packs).exists():
        tr += pack_pairs(a.packs, units, rng)
    # dev
    hand_dev = [it for p in sorted(here.glob("hand_dev*.jsonl")) for it in load_hand(p, by_key)]
    assert all(split_of(it["k"]) == "dev" for it in hand_dev)
    dv = expand_hand(hand_dev, split_sents["dev"], rng) + corpus_pairs(units, "dev", rng, per_sent=1.0)
    # test: perturbations (report) and hand-written paraphrases (report separately, originals only + variants)
    te_p = corpus_pairs(units, "test", rng, per_sent=1.0)
    hand_te = load_hand(here / "hand_test.jsonl", by_key)
    assert all(split_of(it["k"]) == "test" for it in hand_te)
    te_h = expand_hand(hand_te, split_sents["test"], rng, variants=False, xpair=False)
    te_hv = [r for r in expand_hand(hand_te, split_sents["test"], rng, variants=True, xpair=True)
             if r["source"] != "hand"]
    # leak guard: no test-split key or test-split sentence in train/dev
    test_sents = {s for k, s in split_sents["test"]}
    # (boilerplate sentences such as "This Regulation shall enter into force ..." occur verbatim in test and train
    # articles: rows using such a sentence are dropped from train/dev)
    dropped = {}
    for name in ("train", "dev"):
        rows = tr if name == "train" else dv
        keep = [r for r in rows if r["premise"] not in test_sents and r["hypothesis"] not in test_sents]
        dropped[name] = len(rows) - len(keep)
        assert all(split_of(r["key"]) != "test" for r in keep)
        if name == "train":
            tr = keep
        else:
            dv = keep
    print("dropped rows sharing a verbatim test-split sentence:", dropped)
    # de-dup
    def dedup(rows):
        seen, o = set(), []
        for r in rows:
            t = (r["premise"], r["hypothesis"])
            if t not in seen:
                seen.add(t)
                o.append(r)
        return o
    tr, dv, te_p, te_h, te_hv = map(dedup, (tr, dv, te_p, te_h, te_hv))
    rng.shuffle(tr)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl.gz", tr, gz=True)
    write_jsonl(out / "dev.jsonl.gz", dv, gz=True)
    write_jsonl(out / "test_perturb.jsonl.gz", te_p, gz=True)
    write_jsonl(out / "test_hand.jsonl", te_h)
    write_jsonl(out / "test_hand_variants.jsonl", te_hv)
    h = hashlib.sha256()
    for r in tr:
        h.update(json.dumps(r, ensure_ascii=False, sort_keys=True).encode())
    stats = {"train_sha256": h.hexdigest(), "split_rule": SPLIT_RULE, "counts": {}}
    for name, rows in (("train", tr), ("dev", dv), ("test_perturb", te_p), ("test_hand", te_h),
                       ("test_hand_variants", te_hv)):
        stats["counts"][name] = {"total": len(rows), "by_label": dict(Counter(r["label"] for r in rows)),
                                 "by_source_label": dict(Counter(f"{r['source']}/{r['label']}" for r in rows))}
    json.dump(stats, open(out / "stats.json", "w"), indent=1)
    print(json.dumps(stats["counts"], indent=1))
    print("train sha256", stats["train_sha256"])


if __name__ == "__main__":
    main()
