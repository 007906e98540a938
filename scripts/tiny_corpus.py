"""Generated text for the tiny model pair and the shipped prompt sets.

Five workload classes, each a generator of ``(prompt, completion)`` pairs drawn from one
``random.Random``: structured (text -> JSON), code (complete a Python function), summarization
(echoes the input's phrases), chat (rendered with the pair's chat template) and creative (prose
from a grammar over large word lists: high entropy on purpose). The training corpus and the
shipped prompt sets come from the same generators with different seeds, so the prompts are held
out yet in-distribution. Pure standard library, deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

FIRST = ("Maria", "James", "Aisha", "Chen", "Lucas", "Sofia", "Omar", "Elena", "David", "Priya",
         "Noah", "Yuki", "Fatima", "Liam", "Hannah", "Mateo", "Olga", "Samuel", "Amara", "Ivan",
         "Grace", "Kenji", "Laura", "Tomas", "Nadia", "Peter", "Zara", "Hugo", "Ines", "Victor")
LAST = ("Lopez", "Smith", "Khan", "Wang", "Martin", "Rossi", "Haddad", "Petrova", "Cohen", "Patel",
        "Brown", "Tanaka", "Ali", "Murphy", "Schmidt", "Garcia", "Ivanova", "Okafor", "Mensah",
        "Novak", "Kim", "Sato", "Dubois", "Silva", "Nowak", "Jensen", "Moreau", "Costa", "Berg")
CITIES = ("Madrid", "London", "Lagos", "Shanghai", "Lyon", "Rome", "Beirut", "Sofia", "Haifa",
          "Pune", "Boston", "Osaka", "Cairo", "Dublin", "Berlin", "Lima", "Kyiv", "Accra", "Oslo",
          "Prague", "Seoul", "Paris", "Porto", "Bergen", "Denver", "Toronto", "Nairobi", "Quito")
PRODUCTS = ("wireless mouse", "USB-C cable", "laptop stand", "desk lamp", "coffee grinder",
            "water bottle", "mechanical keyboard", "noise cancelling headphones", "phone case",
            "backpack", "monitor arm", "webcam", "office chair", "notebook", "fountain pen",
            "power bank", "hdmi adapter", "standing desk", "bluetooth speaker", "yoga mat")
STATUSES = ("pending", "shipped", "delivered", "cancelled", "returned", "processing")
LEVELS = ("INFO", "WARNING", "ERROR", "DEBUG")
SERVICES = ("payments", "auth", "search", "billing", "gateway", "inventory", "orders", "users")
LOG_MESSAGES = ("Timeout while calling the bank API", "User login failed", "Cache miss for key",
                "Request completed", "Retrying connection to the database", "Invalid token",
                "Disk usage above threshold", "Order created", "Payment declined",
                "Index rebuilt", "Rate limit exceeded", "Session expired")
DEPARTMENTS = ("engineering", "sales", "marketing", "finance", "support", "research", "legal")
TITLES = ("software engineer", "data analyst", "product manager", "designer", "accountant",
          "sales manager", "support agent", "research scientist", "lawyer", "recruiter")

NOUNS = ("river", "lantern", "garden", "mountain", "window", "letter", "harbor", "forest", "clock",
         "bridge", "storm", "violin", "market", "island", "mirror", "train", "castle", "meadow",
         "shadow", "candle", "library", "ocean", "desert", "orchard", "feather", "compass", "tower",
         "village", "whisper", "dream", "fox", "owl", "wolf", "sparrow", "moon", "star", "cloud",
         "road", "door", "key", "ship", "song", "stone", "map", "fire", "rain", "snow", "field",
         "lighthouse", "kitchen", "attic", "station", "valley", "cathedral", "workshop", "balcony")
ADJS = ("quiet", "golden", "ancient", "restless", "silver", "hidden", "gentle", "broken", "bright",
        "forgotten", "narrow", "distant", "warm", "pale", "wild", "hollow", "crimson", "tired",
        "curious", "silent", "endless", "bitter", "tender", "frozen", "velvet", "lonely", "brave",
        "strange", "soft", "heavy", "small", "secret", "patient", "empty", "proud", "faint")
VERBS = ("watched", "carried", "followed", "remembered", "painted", "opened", "found", "lost",
         "crossed", "answered", "gathered", "whispered to", "waited for", "dreamed of", "built",
         "forgot", "mended", "chased", "sheltered", "listened to", "wandered past", "counted")
ADVS = ("slowly", "quietly", "suddenly", "again", "at dawn", "before midnight", "in silence",
        "for a long time", "without a word", "as the bells rang", "under the rain", "alone")
CHARACTERS = ("the old fisherman", "a young painter", "the lighthouse keeper", "a lost child",
              "the baker", "a traveling musician", "the widow", "a retired sailor", "the twins",
              "a curious girl", "the night guard", "an old teacher", "the gardener", "a stranger")

TOPICS = ("renewable energy", "remote work", "city transport", "online privacy", "water supply",
          "public libraries", "electric cars", "food prices", "school lunches", "urban gardens",
          "air quality", "housing costs", "cloud computing", "bike lanes", "recycling")
ORGS = ("the city council", "a local startup", "the national bank", "the university",
        "a regional hospital", "the ministry of health", "a software company", "the port authority",
        "a farmers cooperative", "the transport agency")
ACTIONS = ("announced a new plan for", "published a report on", "opened a program on",
           "raised funding for", "launched a study of", "cut the budget for", "expanded support for")

SUPPORT = (
    ("How do I reset my password?", "To reset your password, open the login page and click "
     "\"Forgot password\". Enter the email address of your account and we will send you a link. "
     "Follow the link and choose a new password."),
    ("How can I change my email address?", "To change your email address, open Settings, then "
     "Account, and click \"Edit\" next to your email. Enter the new address and confirm it with "
     "the link we send you."),
    ("How do I cancel my subscription?", "To cancel your subscription, open Settings, then "
     "Billing, and click \"Cancel subscription\". Your plan stays active until the end of the "
     "current billing period."),
    ("Where can I download my invoices?", "You can download your invoices from Settings, then "
     "Billing, then Invoices. Each invoice has a \"Download PDF\" button."),
    ("How do I enable two-factor authentication?", "To enable two-factor authentication, open "
     "Settings, then Security, and click \"Enable 2FA\". Scan the QR code with your "
     "authenticator app and enter the six digit code."),
    ("How do I delete my account?", "To delete your account, open Settings, then Account, and "
     "click \"Delete account\". This removes all your data and cannot be undone."),
)
GREETINGS = ("Hi", "Hello", "Hey", "Good morning", "Hi there")


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def _email(first: str, last: str, rng: random.Random) -> str:
    return f"{first.lower()}.{last.lower()}@{rng.choice(('example.com', 'mail.com', 'corp.org'))}"


def _dump(record: object, pretty: bool) -> str:
    return json.dumps(record, indent=2 if pretty else None)


def structured(rng: random.Random) -> tuple[str, str]:
    """Free text (a person, an order, a log line, an employee) -> a JSON record."""
    kind = rng.randrange(4)
    pretty = rng.random() < 0.5
    fmt = "as pretty-printed JSON" if pretty else "as JSON"
    if kind == 0:
        first, last = _name(rng)
        age, city, email = rng.randint(18, 80), rng.choice(CITIES), _email(first, last, rng)
        text = rng.choice((
            f"{first} {last} is {age} years old, lives in {city} and can be reached at {email}.",
            f"Our new customer {first} {last} ({age}) moved to {city}. Contact: {email}.",
            f"Name: {first} {last}. Age: {age}. City: {city}. Email: {email}.",
        ))
        ask = rng.choice(("Extract the customer's name, age, city and email from the text below",
                          "Extract name, age, city and email from this text"))
        rec = {"name": f"{first} {last}", "age": age, "city": city, "email": email}
    elif kind == 1:
        oid, qty = rng.randint(10000, 99999), rng.randint(1, 9)
        product, status = rng.choice(PRODUCTS), rng.choice(STATUSES)
        price = round(rng.uniform(3, 400), 2)
        text = rng.choice((
            f"Order {oid}: {qty} x {product} at {price} each, status {status}.",
            f"The order #{oid} contains {qty} {product} priced {price} per unit and is {status}.",
        ))
        ask = rng.choice(("Convert this order into a JSON record with fields order_id, product, "
                          "quantity, price and status", "Turn the order below into JSON"))
        rec = {"order_id": oid, "product": product, "quantity": qty, "price": price,
               "status": status}
    elif kind == 2:
        ts = (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
              f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}")
        level, service, msg = rng.choice(LEVELS), rng.choice(SERVICES), rng.choice(LOG_MESSAGES)
        text = f"{ts} {level} {service} {msg}"
        ask = rng.choice(("Parse the log line into JSON with keys timestamp, level, service and "
                          "message", "Parse this log line"))
        rec = {"timestamp": ts, "level": level, "service": service, "message": msg}
    else:
        first, last = _name(rng)
        dept, title = rng.choice(DEPARTMENTS), rng.choice(TITLES)
        eid, salary = rng.randint(100, 9999), rng.randrange(30000, 200000, 500)
        text = rng.choice((
            f"{first} {last} (employee {eid}) works in {dept} as a {title} and earns {salary} a year.",
            f"Employee #{eid}, {first} {last}, {title}, {dept} department, salary {salary}.",
        ))
        ask = rng.choice(("Extract the employee record from the text below",
                          "Extract id, name, department, title and salary from this text"))
        rec = {"id": eid, "name": f"{first} {last}", "department": dept, "title": title,
               "salary": salary}
    return f"{ask} {fmt}.\nText: {text}\nJSON:", " " + _dump(rec, pretty)


_CODE_TASKS = (
    ("total_{f}", "{c}", "Return the sum of {f} over {c}.",
     "    total = 0\n    for item in {c}:\n        total += item[\"{f}\"]\n    return total\n"),
    ("count_{v}", "{c}", "Return how many items have status {v}.",
     "    count = 0\n    for item in {c}:\n        if item[\"status\"] == \"{v}\":\n"
     "            count += 1\n    return count\n"),
    ("filter_by_{f}", "{c}, value", "Return the {c} whose {f} equals value.",
     "    result = []\n    for item in {c}:\n        if item[\"{f}\"] == value:\n"
     "            result.append(item)\n    return result\n"),
    ("max_{f}", "{c}", "Return the largest {f} among {c}, or None if empty.",
     "    if not {c}:\n        return None\n    best = {c}[0][\"{f}\"]\n    for item in {c}[1:]:\n"
     "        if item[\"{f}\"] > best:\n            best = item[\"{f}\"]\n    return best\n"),
    ("group_by_{f}", "{c}", "Group {c} by their {f} into a dict of lists.",
     "    groups = {{}}\n    for item in {c}:\n        key = item[\"{f}\"]\n"
     "        groups.setdefault(key, []).append(item)\n    return groups\n"),
    ("read_{v}_lines", "path", "Read the file at path and return its non-empty lines.",
     "    with open(path, encoding=\"utf-8\") as handle:\n"
     "        return [line.strip() for line in handle if line.strip()]\n"),
    ("average_{f}", "{c}", "Return the mean {f} of {c}, or 0.0 if empty.",
     "    if not {c}:\n        return 0.0\n    return sum(item[\"{f}\"] for item in {c}) / len({c})\n"),
    ("sort_by_{f}", "{c}, reverse=False", "Return {c} sorted by {f}.",
     "    return sorted({c}, key=lambda item: item[\"{f}\"], reverse=reverse)\n"),
    ("unique_{f}s", "{c}", "Return the distinct {f} values in order of first appearance.",
     "    seen = set()\n    result = []\n    for item in {c}:\n        value = item[\"{f}\"]\n"
     "        if value not in seen:\n            seen.add(value)\n            result.append(value)\n"
     "    return result\n"),
    ("parse_{v}_ints", "text", "Parse a comma separated string of integers.",
     "    return [int(part) for part in text.split(\",\") if part.strip()]\n"),
)
FIELDS = ("price", "quantity", "age", "salary", "score", "weight", "amount", "total", "size",
          "city", "status", "name", "level", "count", "duration", "rating", "height", "distance",
          "cost", "balance", "discount", "views", "likes", "revenue", "stock", "year", "month",
          "country", "category", "priority", "region", "owner", "label", "version", "speed")
COLLECTIONS = ("items", "records", "rows", "orders", "entries", "users", "products")


def code(rng: random.Random) -> tuple[str, str]:
    """Complete a templated Python function (signature and docstring given)."""
    name, args, doc, body = rng.choice(_CODE_TASKS)
    slots = {"f": rng.choice(FIELDS), "v": rng.choice(STATUSES), "c": rng.choice(COLLECTIONS)}
    name, args, doc, body = (t.format(**slots) for t in (name, args, doc, body))
    ask = rng.choice(("Complete the function.", "Complete the following Python function.",
                      "Finish this function:"))
    prompt = f"{ask}\n```python\ndef {name}({args}):\n    \"\"\"{doc}\"\"\""
    return prompt, "\n" + body + "```"


def _report(rng: random.Random) -> tuple[str, list[str]]:
    org, action, topic = rng.choice(ORGS), rng.choice(ACTIONS), rng.choice(TOPICS)
    city, amount = rng.choice(CITIES), rng.randint(2, 90)
    year = rng.randint(2019, 2026)
    first, last = _name(rng)
    sentences = [
        f"In {year}, {org} in {city} {action} {topic}.",
        f"The effort will cost about {amount} million euros over {rng.randint(2, 6)} years.",
        f"{first} {last}, who leads the work, said the goal is to make {topic} "
        f"{rng.choice(('cheaper', 'safer', 'easier to use', 'more reliable', 'fairer'))}.",
        rng.choice((f"Critics say the plan for {topic} is too slow.",
                    f"Residents of {city} have asked for more details.",
                    f"Similar work on {topic} in {rng.choice(CITIES)} took twice as long.")),
    ]
    summary = (f"{org[0].upper() + org[1:]} in {city} {action} {topic}, costing about {amount} "
               f"million euros, led by {first} {last}.")
    return summary, sentences


def summarization(rng: random.Random) -> tuple[str, str]:
    """A short news-like text -> a one-sentence summary reusing its phrases."""
    summary, sentences = _report(rng)
    ask = rng.choice(("Summarize the following text in one sentence.", "Summarize:",
                      "Write a one-sentence summary of this article."))
    return f"{ask}\nText: {' '.join(sentences)}\nSummary:", " " + summary


def render_chat(messages: list[dict[str, str]]) -> str:
    """The pair's chat template (kept in sync with CHAT_TEMPLATE) with a generation prompt."""
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"


def chat_messages(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    """A support or small-talk user turn and the assistant's reply."""
    kind = rng.randrange(4)
    if kind == 3:
        oid, product, status = rng.randint(10000, 99999), rng.choice(PRODUCTS), rng.choice(STATUSES)
        user = rng.choice((f"Where is my order {oid}? I ordered a {product}.",
                           f"{rng.choice(GREETINGS)}, what is the status of order {oid} ({product})?"))
        answer = (f"Thanks for your message. Your order {oid} for the {product} is {status}. "
                  f"You can follow it in Settings, then Orders. If you need more help with order "
                  f"{oid}, reply here and we will check it for you.")
        return [{"role": "user", "content": user}], answer
    if kind == 0:
        question, answer = rng.choice(SUPPORT)
        user = rng.choice((question, f"{rng.choice(GREETINGS)}! {question}",
                           f"{question} Thanks."))
        return [{"role": "user", "content": user}], answer
    if kind == 1:
        city = rng.choice(CITIES)
        first, _ = _name(rng)
        user = rng.choice((f"My name is {first}. What can I visit in {city}?",
                           f"I am {first} and I am travelling to {city} next week. Any tips?"))
        place, food = rng.choice(NOUNS), rng.choice(("market", "bakery", "cafe", "restaurant"))
        answer = (f"Hello {first}! In {city} you can start with the old {place} near the center, "
                  f"then walk to the local {food}. Take comfortable shoes and check the opening "
                  f"hours before you go. Enjoy {city}!")
        return [{"role": "user", "content": user}], answer
    topic = rng.choice(TOPICS)
    user = rng.choice((f"Can you explain {topic} in simple words?", f"What is {topic}?",
                       f"Explain {topic} to a beginner."))
    if rng.random() < 0.7:
        user = f"I work in {rng.choice(DEPARTMENTS)} in {rng.choice(CITIES)}. {user}"
    answer = (f"Sure. {topic[0].upper() + topic[1:]} is about how people and organisations deal "
              f"with {topic} every day. The main questions are cost, access and safety. "
              f"A good first step is to read what {rng.choice(ORGS)} publishes on {topic}.")
    return [{"role": "user", "content": user}], answer


def chat(rng: random.Random) -> tuple[str, str]:
    messages, answer = chat_messages(rng)
    return render_chat(messages), answer


def _sentence(rng: random.Random) -> str:
    shape = rng.randrange(4)
    a, n = rng.choice(ADJS), rng.choice(NOUNS)
    if shape == 0:
        s = f"{rng.choice(CHARACTERS)} {rng.choice(VERBS)} the {a} {n} {rng.choice(ADVS)}"
    elif shape == 1:
        s = f"the {n} was {a} and {rng.choice(ADJS)}, like a {rng.choice(NOUNS)} {rng.choice(ADVS)}"
    elif shape == 2:
        s = f"somewhere beyond the {a} {n}, {rng.choice(CHARACTERS)} {rng.choice(VERBS)} a {rng.choice(NOUNS)}"
    else:
        s = f"no one {rng.choice(VERBS)} the {n} of the {rng.choice(ADJS)} {rng.choice(NOUNS)}"
    return s[0].upper() + s[1:] + "."


def creative(rng: random.Random) -> tuple[str, str]:
    """A short story or poem request -> prose from a grammar (high entropy)."""
    subject = f"{rng.choice(ADJS)} {rng.choice(NOUNS)}"
    ask = rng.choice((f"Write a short story about a {subject}.",
                      f"Write a poem about a {subject}.",
                      f"Tell me a story about {rng.choice(CHARACTERS)} and a {subject}."))
    return ask + "\n", " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))


GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "structured": structured, "code": code, "summarization": summarization, "chat": chat,
    "creative": creative,
}
MAX_TOKENS = {"structured": 64, "code": 64, "summarization": 48, "chat": 64, "creative": 64}


def prompt_set(workload: str, n: int, seed: int, exclude: set[str]) -> list[dict]:
    """``n`` distinct prompts of one class, none of them in ``exclude`` (the training prompts)."""
    rng = random.Random(f"{workload}-{seed}")
    rows: list[dict] = []
    seen = set(exclude)
    while len(rows) < n:
        if workload == "chat":
            messages, _ = chat_messages(rng)
            prompt = render_chat(messages)
        else:
            prompt, _ = GENERATORS[workload](rng)
            messages = None
        if prompt in seen:
            continue
        seen.add(prompt)
        row = {"id": f"{workload}-{len(rows) + 1:03d}", "prompt": prompt,
               "max_tokens": MAX_TOKENS[workload]}
        if messages is not None:
            row["messages"] = messages
        rows.append(row)
    return rows
