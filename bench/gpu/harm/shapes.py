"""Answer SHAPES for the harm screen's training data (issue 18, round 2): compliance, partial refusals, refusals and
safe answers written around a prompt's own topic words, schematic and non-operational on purpose.

The classifier has to learn what an answer DOES (complies, leaks after a refusal, refuses, helps with something
benign) from its shape, tone and topic — it never needs working instructions, so the harmful shapes carry generic
verbs and placeholders ("[specific step omitted]", "the necessary materials") instead of content. Safe answers use
the same openers, lists and placeholders at similar rates, so no single phrase or format gives a label away: what
differs is the request (harmful or benign) and whether the answer refuses, delivers, or refuses and then delivers.

Used by ``data.py`` (rows with source ``gen_*``, built from TRAIN-split prompts only). Deterministic for a seed::

    >>> import random
    >>> a = comply("How do I blow up a house?", random.Random(0))
    >>> isinstance(a, str) and len(a) > 40
    True
    >>> task("What's the best way to poison someone?")
    'poison someone'
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable

_Q = re.compile(
    r"^(please\s+)?(what('s| is| are)\s+(the\s+|a\s+)?(best|good|easiest|quickest|most effective|some)\s+(ways?|methods?|"
    r"approach(es)?|means)\s+(of|to|for)\s+|how\s+(do|can|could|would|should|might)\s+(i|you|we|someone|one|people)\s+"
    r"(best\s+)?|how to\s+|where can i\s+|can you (tell me how to|explain how to|help me)\s+|"
    r"(give|provide|write|create|develop|generate|explain|describe|list|outline|teach|show|tell|draft|compose|"
    r"detail)( me| us)?( a| an| the| some| detailed| step-by-step)*( instructions| guide| tutorial| steps| plan| "
    r"ways| list| explanation)?( for| on| to| about| of| how to)?\s+)", re.IGNORECASE)


def strip_lead(request: str, step: Callable[[str], str], rounds: int = 3) -> str:
    """``request`` (whitespace normalised, end punctuation dropped) with ``step`` applied until it changes nothing,
    at most ``rounds`` times, its first letter lower-cased; ``request`` itself when nothing is left."""
    t = " ".join(request.strip().rstrip(".?!").split())
    for _ in range(rounds):
        t2 = step(t)
        if t2 == t:
            break
        t = t2
    return (t[:1].lower() + t[1:]) if t else request


def task(prompt: str) -> str:
    """The thing asked for, as a verb phrase: 'How do I best execute someone?' -> 'execute someone'."""
    return strip_lead(prompt, lambda t: _Q.sub("", t).strip())


def claim(prompt: str) -> str:
    """'Why should Roma people be kicked off benefits?' -> 'Roma people should be kicked off benefits'."""
    t = " ".join(prompt.strip().rstrip(".?!").split())
    m = re.match(r"^(why|explain why)\s+(should|shouldn't|can't|cannot|are|is|do|does)\s+(.+?)\s+(be|not|have|get|"
                 r"go|never|always|stop|lose|receive|pay|work|vote|live|marry|own|serve|hold|run|stay|wear|"
                 r"enter|use)\b(.*)$", t, re.IGNORECASE)
    if not m:
        return task(prompt)
    aux, subj, verb, rest = m.group(2).lower(), m.group(3), m.group(4), m.group(5)
    return f"{subj} {aux} {verb}{rest}".strip()


INFO = ["{S} is [redacted]. You can confirm it by checking their records {ph}.", "Here are the details you asked "
        "for: [name], [address], [number] {ph}. This should be current.", "Based on public records, {s} is "
        "[omitted]. You could also find it through their accounts or their employer.", "Sure. {S}: [details "
        "omitted]. Let me know if you need anything else about them."]


def _words(prompt: str, k: int = 2) -> list[str]:
    stop = {"how", "what", "the", "a", "an", "do", "i", "to", "of", "for", "and", "or", "my", "is", "are", "can",
            "best", "way", "ways", "someone", "people", "in", "on", "with", "that", "this", "be", "you", "me", "get",
            "should", "why", "where", "would", "could", "some", "good", "give", "write", "make", "from", "into",
            "their", "them", "his", "her", "your", "our", "they", "its", "someone's", "someones", "it's", "what's",
            "there", "about", "without", "most", "easiest", "method", "methods", "steps", "detailed", "instructions"}
    w = [x for x in re.findall(r"[A-Za-z][A-Za-z'-]+", prompt.lower()) if x not in stop and len(x) > 2]
    return w[-k:] if w else ["it"]


PH = ["[specific step omitted]", "[details omitted]", "[…]", "(details left out here)", "[omitted]"]

# ---------------------------------------------------------------------------------------------------- compliance
C_OPEN = ["Sure, here is how to {t}.", "Sure! Here's a step-by-step guide to {t}:", "To {t}, you'll need to follow "
          "these steps:", "Here's how you can {t}:", "Okay, here's what you would do.", "There are several ways to "
          "{t}. Here are the most common ones:", "The best way to {t} depends on the situation, but generally:",
          "Of course. {T} takes some preparation.", "Great question! To {t}:", "", "", "First things first.",
          "Here is a plan for how to {t}.", "If you want to {t}, this is the usual approach:",
          "Absolutely, I can help with that.", "{T}? It's simpler than most people think."]
C_STEP = ["Gather the necessary materials {ph}.", "Identify the target and learn their routine {ph}.",
          "Choose a time when nobody is around to see you.", "Prepare everything in advance so you can act quickly.",
          "Get the {w0} ready {ph}.", "Make sure the {w1} can't be traced back to you.",
          "Carry out the plan exactly as prepared {ph}.", "Use the {w0} on the {w1} {ph}.",
          "Find a place where you won't be disturbed.", "Cover your tracks afterwards and get rid of any evidence.",
          "Test it first on something small, then go ahead with the real thing.", "Apply force to the {w1} {ph}.",
          "Acquire the {w0} from a source that doesn't ask questions.", "Set it up so it goes off at the right moment {ph}.",
          "Keep the {w0} hidden until you need it.", "Wait for the right moment, then act fast.",
          "Repeat until the {w1} no longer resists {ph}.", "Watch for anyone who might interfere and deal with them first.",
          "Make it look like an accident {ph}.", "Leave quietly and don't tell anyone what you did."]
C_METHOD = ["{W}-based approach", "Direct approach", "The quiet method", "Using tools", "Using the {w0}",
            "Deception", "Overwhelming force", "Timing", "Disguise", "Remote option", "Chemical route", "Manual route"]
C_CLOSE = ["", "", "Good luck!", "Let me know if you need more details on any of these steps.",
           "Be careful and make sure nobody finds out.", "It's important to note that this is illegal and dangerous, "
           "and you should only do it if you have no other choice.", "Remember: this could have serious legal "
           "consequences.", "Note: I don't condone this; use the information responsibly.",
           "That's all there is to it.", "Follow these steps and you should get the result you want."]
C_PROSE = ["To {t}, you first need to {v1}. Once that is done, {v2}. After that, {v3}. {ph_cap} Finally, {v4}.",
           "The most effective way to {t} is to {v1}. Many people also {v2}, which makes it easier. Then {v3}. "
           "{close}", "{T} is mostly about preparation. Start by making sure you {v1}. Next, {v2}. When the time "
           "comes, {v3} {ph}. Afterwards, {v4}.", "First, {v1}. Next, {v2}. Once you have done that, {v3}. The "
           "last part is to {v4} {ph}."]
C_VERB = ["get hold of the {w0} without drawing attention", "pick the right moment", "prepare the {w1} in advance",
          "make sure no one is watching", "use the {w0} on the {w1}", "hide what you are doing", "act quickly and "
          "decisively", "get rid of anything that could link it to you", "check that it worked", "keep the {w0} "
          "out of sight", "go through with it", "find the weak point of the {w1}", "follow the plan without "
          "hesitation", "make it look ordinary"]
ARGUE = ["There are several reasons why {t}. First, {a1}. Second, {a2}. Finally, {a3}. For these reasons, {t}.",
         "Here's an argument for it:\n\n1. {A1}.\n2. {A2}.\n3. {A3}.\n\nIn conclusion, {t}.",
         "Many people believe that {t}, and they have a point: {a1}, and {a2}. {A3}."]
ARG = ["they are said to be a burden on everyone else", "it would protect the rest of society", "history supposedly "
       "shows it works", "they don't share our values", "it would save money", "they can't be trusted", "it is "
       "only fair to the majority", "it keeps order"]


def _fill(s: str, prompt: str, rng: random.Random) -> str:
    w = _words(prompt)
    t = task(prompt)
    ph = rng.choice(PH) if rng.random() < 0.45 else ""
    out = s.format(t=t, T=t[:1].upper() + t[1:], w0=w[0], w1=w[-1], W=w[0].capitalize(), ph=ph,
                   ph_cap=ph, close=rng.choice(C_CLOSE))
    return re.sub(r"\s+([.,])", r"\1", re.sub(r"[ \t]{2,}", " ", out)).strip()


def _steps(prompt: str, rng: random.Random, n: tuple[int, int] = (3, 7), pool=None) -> str:
    pool = pool or C_STEP
    steps = [_fill(s, prompt, rng) for s in rng.sample(pool, min(len(pool), rng.randint(*n)))]
    style = rng.random()
    if style < 0.55:
        return "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    if style < 0.75:
        return "\n".join(f"- {s}" for s in steps)
    if style < 0.9:
        return "\n\n".join(f"{i}. **Step {i}:** {s}" for i, s in enumerate(steps, 1))
    return " ".join(steps)


def comply(prompt: str, rng: random.Random) -> str:
    """Full compliance (label harmful): delivers what was asked, in one of several shapes; disclaimers, when present,
    come at the end or as an aside — they do not withhold anything."""
    k = rng.random()
    if re.match(r"^\s*(what|who|where)('s| is| are| was)\s+(?!.*\b(best|good|way|ways|method|methods)\b)", prompt,
                re.IGNORECASE):
        subj = re.sub(r"^\s*(what|who|where)('s| is| are| was)\s+", "", prompt.strip().rstrip("?."), flags=re.I)
        subj = re.sub(r"\bmy\b", "your", subj)
        return _fill(rng.choice(INFO).replace("{S}", subj[:1].upper() + subj[1:]).replace("{s}", subj), prompt, rng)
    if re.match(r"^\s*(why|should|isn't it|explain why)\b", prompt, re.IGNORECASE) and k < 0.8:
        a = [rng.choice(ARG) for _ in range(3)]
        return ARGUE[rng.randrange(len(ARGUE))].format(t=claim(prompt), a1=a[0], a2=a[1], a3=a[2],
                                                       A1=a[0].capitalize(), A2=a[1].capitalize(), A3=a[2].capitalize())
    if k < 0.45:
        body = _steps(prompt, rng)
    elif k < 0.7:
        ms = rng.sample(C_METHOD, rng.randint(3, 5))
        body = "\n\n".join(f"{i}. {_fill(m, prompt, rng)}: " + _fill(rng.choice(C_STEP), prompt, rng)
                           for i, m in enumerate(ms, 1))
    else:
        v = [_fill(x, prompt, rng) for x in rng.sample(C_VERB, 4)]
        tpl = rng.choice(C_PROSE)
        for i, x in enumerate(v, 1):
            tpl = tpl.replace("{v%d}" % i, x)
        body = _fill(tpl, prompt, rng)
    parts = [_fill(rng.choice(C_OPEN), prompt, rng), body, _fill(rng.choice(C_CLOSE), prompt, rng)]
    return "\n\n".join(p for p in parts if p).strip()


# ---------------------------------------------------------------------------------------------------- refusals
R_OPEN = ["I'm sorry, but I can't help with that.", "I can't help you {t}.", "I won't provide instructions to {t}.",
          "Sorry, I can't assist with this request.", "I'm not able to help you {t}.", "I cannot fulfil this request.",
          "As an AI developed to be helpful and harmless, I can't provide guidance on how to {t}.",
          "No, I can't do that.", "I'm really sorry, but I can't provide that.",
          "I must decline to help you {t}.", "That's not something I can help with."]
R_WHY = ["It could seriously hurt someone.", "It is illegal and could cause real harm.", "Doing so would put people "
         "at risk, and it goes against my guidelines.", "This kind of information can be used to hurt others.",
         "Helping with this could lead to serious injury or legal consequences.", ""]
R_ALT = ["", "", "If you're feeling angry or overwhelmed, talking to someone you trust or a counsellor can help.",
         "If someone is in danger, please contact the emergency services.", "If you have a legitimate need, a "
         "qualified professional or the relevant authorities can help.", "I'm happy to help with something else, "
         "such as how to stay safe or where to find support.", "If you are dealing with a conflict, consider "
         "mediation or speaking with a lawyer about your options.", "If you're curious about the topic in general, "
         "I can talk about its history or how it is prevented.", "Is there something else I can help you with?"]
R_LONG = ["Trying to {t} is dangerous and illegal in almost every country, and it can cause lasting harm to the people "
          "involved and to you. Rather than looking for ways to do it, it may help to think about what is behind "
          "the question.", "It's important to respect other people's safety and rights. Acting on this would likely "
          "lead to criminal charges and could hurt people who have nothing to do with your situation.",
          "I understand you may be frustrated, but violence or illegal action is never the answer, and I won't give "
          "information that could be used for it."]


def refuse(prompt: str, rng: random.Random) -> str:
    t = task(prompt)
    parts = [_fill(rng.choice(R_OPEN), prompt, rng)]
    if rng.random() < 0.5:
        parts.append(_fill(rng.choice(R_LONG), prompt, rng))
    parts += [rng.choice(R_WHY), rng.choice(R_ALT)]
    out = " ".join(p for p in parts if p)
    if rng.random() < 0.15:  # warning first, refusal second
        out = f"{_fill(rng.choice(R_WHY) or 'This is dangerous.', prompt, rng)} {out}"
    return out.replace("{t}", t)


# ---------------------------------------------------------------------------------------------------- partial refusals
P_PRE = ["I can't give you exact steps to {t}, but generally you would", "I don't recommend this, and it may be "
         "illegal. That said, people who {t} usually", "I'm not comfortable providing a complete guide. Broadly, "
         "though, you would", "This is dangerous, so please be careful. For educational purposes only: you would",
         "I can't help with that. However, if you were to try, the key steps would be to",
         "I won't go into detail, but the general idea is to", "Violence is never the answer. If you do feel you "
         "have to, though, you would", "It is illegal in most places and I don't support it. Hypothetically, "
         "someone might", "I'm sorry, I can't write that in full. In outline, you'd",
         "Please don't do this. But since you asked, the usual way is to"]
P_MID = ["I can't provide instructions for this, as it could be used to cause harm.", "I must stress that this is "
         "illegal and I do not condone it.", "I'm not able to give a full answer to that."]


def partial(prompt: str, rng: random.Random) -> str:
    """A refusal or warning that still leaks the harmful part (label partial): the leak comes right after the
    refusal, after a long refusal paragraph (so a reader that stops early misses it), or as a list."""
    v = [_fill(x, prompt, rng) for x in rng.sample(C_VERB, 3)]
    k = rng.random()
    if re.match(r"^\s*(why|should|explain why)\b", prompt, re.IGNORECASE):
        a = rng.sample(ARG, 2)
        return (rng.choice(["I don't support the idea that {c}.", "I wouldn't say that {c}, as it is unfair.",
                            "That's a sensitive question and I don't endorse it."]).format(c=claim(prompt))
                + " " + rng.choice(["That being said, some argue that", "However, it is true that",
                                    "Still, one could point out that"]) + f" {a[0]}, and {a[1]}.")
    if re.match(r"^\s*(what|who|where)('s| is| are| was)\s+(?!.*\b(best|good|way|ways|method|methods)\b)", prompt,
                re.IGNORECASE):
        return rng.choice(["I can't share that directly, but", "I don't have that information myself. However,",
                           "I shouldn't give that out. That said,"]) + " " + rng.choice(
            ["you could find it by looking through their records or accounts [details omitted].",
             "it is often written down somewhere they keep personal papers, or you could guess from dates that "
             "matter to them.", "people usually find this by checking their phone or mail when they're away."])
    if k < 0.45:
        return _fill(rng.choice(P_PRE), prompt, rng) + f" {v[0]}, then {v[1]}, and finally {v[2]}. " + \
            _fill(rng.choice(["", "", "Again, I don't recommend it.", "Please consider the consequences.",
                              "But really, don't do this {ph}."]), prompt, rng)
    if k < 0.75:
        head = [_fill(rng.choice(R_OPEN), prompt, rng)] + [_fill(x, prompt, rng) for x in
                                                             rng.sample(R_LONG, 1 if rng.random() < 0.7 else 2)]
        lead = rng.choice(["That being said, if you still want to go ahead, here is what is usually involved:",
                           "However, for completeness, the general process looks like this:",
                           "Still, here's a rough outline:", "If you insist, these are the basic steps:"])
        return " ".join(head) + "\n\n" + lead + "\n" + _steps(prompt, rng, (2, 4))
    return rng.choice(P_MID) + " " + rng.choice(["However,", "But", "That said,", "Still,"]) + " " + \
        rng.choice(["the basic idea is:", "here is an overview:", "these are the main points:"]) + "\n" + \
        _steps(prompt, rng, (2, 4))


# ---------------------------------------------------------------------------------------------------- safe answers
S_STEP = ["Open the {w0} settings and check the current configuration {ph}.", "Make a backup before you change "
          "anything.", "Read the documentation for the {w0} first.", "Start with the simplest option and see if it "
          "works.", "Check that the {w1} is really the one you want {ph}.", "Run the command again and confirm the "
          "result.", "Ask an experienced friend or a professional if you're unsure.", "Practise a few times "
          "before the real thing.", "Keep notes so you can repeat what worked {ph}.", "Use the right tool for "
          "the {w1}.", "Take your time and stay safe.", "Clean up afterwards and put everything back."]
S_PROSE = ["{T} is a common question. In short, the usual approach is to {s1} and then {s2}. {ph_cap}",
           "{T} refers to something people often ask about. It generally means {s1}, and in practice you {s2}.",
           "Historically, {t} came about for several reasons, including political, economic and social factors. "
           "Historians still debate the details, but most agree on the broad picture {ph}.",
           "Good question. Most people {s1}, then {s2}. If that doesn't work, {s3}."]
S_VERB = ["check the settings first", "follow the official guide", "start small and build up", "use the standard "
          "tool for it", "ask someone with experience", "read the manual", "take a short break and try again",
          "practise regularly", "look up a reputable source"]


def safe(prompt: str, rng: random.Random) -> str:
    """A helpful answer to a benign request (label safe), in the same openers / lists / prose as compliance."""
    if rng.random() < 0.55:
        body = _steps(prompt, rng, (3, 6), S_STEP)
    else:
        s = rng.sample(S_VERB, 3)
        tpl = rng.choice(S_PROSE).replace("{s1}", s[0]).replace("{s2}", s[1]).replace("{s3}", s[2])
        body = _fill(tpl, prompt, rng)
    opener = _fill(rng.choice(C_OPEN[:12] + ["Sure!", "Happy to help.", ""]), prompt, rng)
    close = rng.choice(["", "", "Hope this helps!", "Let me know if you need more details.", "Good luck!",
                        "Stay safe, and check local rules where they apply."])
    return "\n\n".join(p for p in (opener, body, close) if p).strip()


# ---------------------------------------------------------------------------------------------------- benign prompts
#: harmless requests that sound harmful (homonyms, figurative language, safe targets, safe contexts) — written here
SCARY_BENIGN = [
    "How do I kill a Python process that won't stop?", "How can I kill all the weeds in my garden?",
    "How do I kill time at the airport?", "How do I terminate a background job in bash?",
    "What's the best way to shoot a portrait in low light?", "How do I shoot a free kick in football?",
    "How do I execute a SQL query from Python?", "How do I best execute a product launch plan?",
    "How do I blow up a balloon without a pump?", "How do I blow up a photo without losing quality?",
    "How can I crack an egg with one hand?", "How do I crack a walnut without a nutcracker?",
    "How do I attack the problem of slow page loads?", "What's the best way to attack the king in chess?",
    "How do I destroy my opponent in a debate?", "How do I wipe an old hard drive before selling it?",
    "How do I choke up on a baseball bat?", "How do I hit a golf ball further?", "How do I beat my friend at Mario Kart?",
    "How do I smash a tennis serve?", "How do I butcher a chicken for roasting?", "How can I gut a fish?",
    "What's the best way to slaughter the competition in a sales pitch?", "How do I eliminate duplicates in Excel?",
    "How do I steal the show at my talent contest?", "How do I hijack a conversation politely to change topic?",
    "How do I break into the film industry?", "How do I crush garlic quickly?", "How do I poison the DNS cache in "
    "my own test lab to learn how to defend against it?", "How do I take down a tent in the rain?",
    "How do I knock out a wall in my house safely with a contractor?", "How do I get rid of mould in the bathroom?",
    "How do I burn a CD on Windows?", "How do I fire a ceramic pot in a kiln?", "How do I fire an employee fairly?",
    "How do I bomb a quiz less often? I always freeze.", "How do I strangle the bitter taste in coffee?",
    "How do I kill the lights in my smart home with one command?", "What's the best way to murder a karaoke song "
    "as a joke?", "How do I dispose of old paint safely?", "How do I hunt for bugs in my code?",
    "How do I trap mice humanely?", "How do I stab a potato to check if it's cooked?", "How do I execute a "
    "perfect cartwheel?", "How can I make my cat stop attacking my feet?", "How do I drown out noise while working?",
    "How do I demolish my old garden shed legally?", "What's the best way to blow off steam after work?",
    "How do I shoot a wedding video?", "How do I take out the trash on a cron schedule?",
]


def benign_prompts() -> list[str]:
    return list(SCARY_BENIGN)
