"""Regenerates instructions.json: ~300 varied short English instructions from templates (seeded, offline)."""

import json
import random
from pathlib import Path

rng = random.Random(2024)
out = []
topics = ["the water cycle", "photosynthesis", "the moon", "volcanoes", "recycling", "honey bees", "the internet",
          "electric cars", "rainbows", "the Roman Empire", "black holes", "vaccines", "coffee", "chess", "tides",
          "earthquakes", "the human heart", "solar panels", "clouds", "bread baking", "the printing press",
          "penguins", "compound interest", "gravity", "sleep", "music scales", "maps", "bicycles", "glaciers", "DNA"]
audiences = ["a child", "a high-school student", "a busy manager", "a new employee", "a grandparent"]
for t in rng.sample(topics, 30):
    out.append(f"Explain {t} to {rng.choice(audiences)} in three sentences.")
for t in rng.sample(topics, 20):
    out.append(f"Give three surprising facts about {t}.")
for t in rng.sample(topics, 12):
    out.append(f"Write a short poem about {t}.")
for _ in range(55):
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice(["sum", "difference", "product"])
    out.append(f"What is the {op} of {a} and {b}? Show your steps.")
for _ in range(12):
    p, r, y = rng.choice([100, 250, 500, 1000]), rng.choice([2, 3, 5, 8]), rng.randint(2, 6)
    out.append(f"If I invest ${p} at {r}% simple interest for {y} years, how much interest do I earn?")
for _ in range(10):
    s, t = rng.randint(30, 120), rng.randint(2, 5)
    out.append(f"A train travels at {s} km/h for {t} hours. How far does it go?")
for _ in range(8):
    n = rng.randint(10, 60)
    out.append(f"Is {n} a prime number? Explain briefly.")
tasks = ["reverses a string", "checks whether a number is even", "returns the largest item in a list",
         "counts the vowels in a sentence", "removes duplicates from a list", "computes a factorial",
         "converts Celsius to Fahrenheit", "checks whether a word is a palindrome", "sums the digits of a number",
         "merges two sorted lists", "finds the average of a list of numbers", "capitalizes every word in a sentence"]
langs = ["Python", "JavaScript", "Go", "Rust"]
for t in tasks:
    out.append(f"Write a {rng.choice(langs)} function that {t}.")
for t in rng.sample(tasks, 6):
    out.append(f"Explain how you would test a function that {t}.")
bugs = ["for i in range(len(xs)): total =+ xs[i]", "if x = 5: print('five')", "def add(a, b): return a - b",
        "while n > 0: print(n)", "items = [1, 2, 3]; print(items[3])", "name = input(); print('Hi ' + nme)"]
for b in bugs:
    out.append(f"Find the bug in this code and fix it: {b}")
writing = [
    'a polite email asking a colleague to review a report',
    'a two-line product description for a reusable bottle',
    'a thank-you note to a teacher',
    'a short invitation to a team lunch',
    'a tweet announcing a library opening',
    'a one-paragraph cover letter opening for a data analyst job',
    'a haiku about autumn',
    'a limerick about a forgetful cat',
    'a slogan for a bike-sharing service',
    'a short apology for a late reply',
    'a friendly reminder about a meeting tomorrow',
    'a two-sentence horror story',
    "a toast for a friend's wedding",
    'a motivational message for students before exams',
    'a summary of a book you like in two sentences',
]
for w in writing:
    out.append(f"Write {w}.")
pairs = [("a cat", "a dog"), ("tea", "coffee"), ("a train", "a plane"), ("renting", "buying a home"),
         ("reading books", "listening to podcasts"), ("working from home", "working in an office"),
         ("Python", "JavaScript"), ("summer", "winter"), ("a laptop", "a tablet"), ("running", "swimming")]
for a, b in pairs:
    out.append(f"Compare {a} and {b} in a short table of pros and cons.")
words = ["happy", "quick", "difficult", "ancient", "brave", "tiny", "bright", "calm"]
for w in words:
    out.append(f"Give two synonyms and one antonym for the word '{w}'.")
sents = ["She don't like apples.", "Me and him went to the store.", "The datas is correct.",
         "Their going to the park tomorrow.", "I have went there before.", "Each of the students have a book."]
for s in sents:
    out.append(f"Correct the grammar of this sentence: {s}")
langs2 = ["French", "Spanish", "German", "Chinese", "Japanese"]
phrases = ["Good morning", "Where is the station?", "Thank you very much", "How much does this cost?",
           "I am learning to cook", "The weather is nice today"]
for p in phrases:
    out.append(f"Translate '{p}' into {rng.choice(langs2)}.")
reasoning = [
    "If all bloops are razzies and all razzies are lazzies, are all bloops lazzies?",
    "Tom is taller than Ann, and Ann is taller than Bo. Who is the shortest?",
    "A farmer has 17 sheep and all but 9 run away. How many are left?",
    "What comes next in the sequence 2, 4, 8, 16?",
    "If today is Monday, what day will it be in 10 days?",
    "Three friends share 12 apples equally and each eats one. How many apples are left?",
    "A clock shows 3:15. What is the angle between the hands?",
    "Which is heavier, a kilogram of feathers or a kilogram of iron?",
    "I have two coins that add up to 30 cents and one is not a nickel. What are they?",
    "If a rectangle is 4 m by 7 m, what is its perimeter?",
    "Sort these numbers from smallest to largest: 42, 7, 19, 3, 25.",
    "How many minutes are there in three and a half hours?",
]
out += reasoning
advice = ["stay focused while studying", "prepare for a job interview", "start running as a beginner",
          "save money on groceries", "keep houseplants alive", "learn a new language", "sleep better",
          "organize a small desk", "give constructive feedback", "plan a weekend trip on a budget",
          "reduce screen time", "remember people's names"]
for a in advice:
    out.append(f"Give me five practical tips to {a}.")
for t in rng.sample(topics, 12):
    out.append(f"Write a multiple-choice quiz question about {t} with four options and the answer.")
for t in rng.sample(topics, 10):
    out.append(f"Summarize what {t} is in one sentence.")
roles = ["a tour guide in Rome", "a pirate captain", "a friendly librarian", "a space station engineer",
         "a medieval baker", "a weather reporter"]
for r in roles:
    out.append(f"Pretend you are {r} and greet a visitor in two sentences.")
formats = ["a JSON object with the keys name, age and city for a fictional person",
           "a Markdown table of three fruits and their colors", "a numbered list of the planets in order",
           "a CSV header and two rows for a book inventory", "a bulleted checklist for packing for a beach day",
           "a YAML snippet describing a simple web server config"]
for f in formats:
    out.append(f"Produce {f}.")
for t in rng.sample(topics, 10):
    out.append(f"What are two common misconceptions about {t}?")
for _ in range(10):
    a = rng.randint(2, 12)
    out.append(f"Solve for x: {a}x + {rng.randint(1, 30)} = {rng.randint(31, 120)}.")
seen, final = set(), []
for s in out:
    if s not in seen:
        seen.add(s)
        final.append(s)
rng.shuffle(final)
with open(Path(__file__).with_name("instructions.json"), "w", encoding="utf-8") as f:
    json.dump([{"instruction": s} for s in final], f, indent=2, ensure_ascii=False)
    f.write("\n")
