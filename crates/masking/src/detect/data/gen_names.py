#!/usr/bin/env python3
"""Regenerates the word lists of this folder (lowercase, one a line, sorted, NFC).

Sources (all permissive):
- US Census Bureau 1990 name frequencies (public domain), as shipped in PyPI `names` 0.3.0:
  every first name (dist.male.first, dist.female.first) and the 20,000 most common surnames.
- PyPI `faker` (MIT) person providers of the Latin-script locales listed below: first and last
  names, real common names of each country.
- Debian `wamerican-small` (SCOWL, permissive): lowercase English words, used to tell a
  capitalised common word ("Application") from an unknown surname.

Usage: gen_names.py NAMES_DIR FAKER_DIR WORDS_FILE OUT_DIR
"""
import importlib, os, sys, unicodedata

LOCALES = ["en_US", "en_GB", "en_IE", "en_NZ", "en_IN", "de_DE", "de_AT", "de_CH", "fr_FR", "fr_CA", "fr_CH",
           "it_IT", "es_ES", "es_MX", "es_AR", "es_CO", "es_CL", "nl_NL", "nl_BE", "pt_PT", "pt_BR", "sv_SE",
           "da_DK", "no_NO", "fi_FI", "pl_PL", "cs_CZ", "sk_SK", "hu_HU", "ro_RO", "hr_HR", "sl_SI", "tr_TR",
           "et_EE", "lv_LV", "lt_LT", "ga_IE", "id_ID", "fil_PH", "sw", "yo_NG", "zu_ZA"]

def norm(s):
    return unicodedata.normalize("NFC", s.strip().lower())

def ok(w):
    return len(w) >= 2 and all(c.isalpha() or c in "-'" for c in w)

def main():
    names_dir, faker_dir, words_file, out = sys.argv[1:5]
    sys.path.insert(0, faker_dir)
    first, last = set(), set()
    for f in ("dist.male.first", "dist.female.first"):
        for line in open(os.path.join(names_dir, f)):
            first.add(norm(line.split()[0]))
    for i, line in enumerate(open(os.path.join(names_dir, "dist.all.last"))):
        if i < 20000:
            last.add(norm(line.split()[0]))
    for loc in LOCALES:
        try:
            p = importlib.import_module("faker.providers.person." + loc).Provider
        except Exception:
            continue
        for a in ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"):
            v = getattr(p, a, None)
            if isinstance(v, (list, tuple, dict)):
                first.update(norm(n) for n in v)
        for a in ("last_names", "last_names_male", "last_names_female", "unisex_last_names", "male_last_names"):
            v = getattr(p, a, None)
            for n in (v if isinstance(v, (list, tuple, dict)) else ()):
                # Compound surnames ("de la Cruz") are matched word by word.
                last.update(norm(part) for part in n.split())
    words = {norm(w) for w in open(words_file) if w[:1].islower() and "'" not in w}
    for name, data in (("first_names.txt", first), ("last_names.txt", last), ("english_words.txt", words)):
        with open(os.path.join(out, name), "w") as f:
            f.write("\n".join(sorted(w for w in data if ok(w))) + "\n")

main()
