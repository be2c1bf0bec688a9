#!/usr/bin/env python3
"""Writes the AuthZEN benchmark's fixture: an `idplane apply` document with
USERS people holding two of ROLES roles each, and a policy directory with
POLICIES Cedar policies for one application (`Bench`) with 20 actions.

    python3 bench/authzen_fixture.py OUT_DIR [USERS] [POLICIES]
"""
import json
import os
import random
import sys

out = sys.argv[1]
users = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
policies = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000
roles, actions = 50, 20
rng = random.Random(7)

os.makedirs(f"{out}/policy/schemas", exist_ok=True)
os.makedirs(f"{out}/policy/policies", exist_ok=True)
names = ", ".join(f"a{j}" for j in range(actions))
with open(f"{out}/policy/schemas/Bench.cedarschema", "w") as f:
    f.write(
        "namespace Bench {\n"
        "  entity Doc = { owner: String, level: Long };\n"
        f"  action {names} appliesTo {{ principal: [Idplane::User], resource: [Doc],"
        " context: { ip?: String } };\n}\n"
    )

# Action a0 is what everyone may do (bar the forbids): the allow-heavy mix.
lines = ['@id("everyone-a0")\npermit (principal, action == Bench::Action::"a0", resource is Bench::Doc);\n']
for n in range(policies - 1):
    kind = rng.random()
    action = f'Bench::Action::"a{rng.randrange(actions)}"'
    if kind < 0.5:
        head = f'permit (principal in Idplane::Role::"r{rng.randrange(roles)}", action == {action}, resource is Bench::Doc)'
        body = f" when {{ resource.level <= {rng.randrange(10)} }}"
    elif kind < 0.8:
        pair = ", ".join(f'Bench::Action::"a{rng.randrange(actions)}"' for _ in range(2))
        head = f'permit (principal == Idplane::User::"u{rng.randrange(users)}", action in [{pair}], resource)'
        body = ""
    elif kind < 0.99:
        head = f"forbid (principal, action == {action}, resource)"
        body = f' when {{ resource.level > 8 }} unless {{ principal in Idplane::Role::"r{rng.randrange(roles)}" }}'
    else:
        head = "permit (principal, action, resource)"
        body = f' when {{ resource.owner == principal.name && resource.level < {rng.randrange(3)} }}'
    lines.append(f'@id("p{n}")\n{head}{body};\n')
with open(f"{out}/policy/policies/bench.cedar", "w") as f:
    f.write("\n".join(lines))
with open(f"{out}/policy/settings.json", "w") as f:
    json.dump({"decision_log": {"allow_sample_rate": 0.01}}, f)

doc = ["version: 1", "tenants:", "  - name: default", "    users:"]
doc += [f"      - {{username: u{i}}}" for i in range(users)]
doc += ["    roles:"] + [f"      - {{name: r{k}}}" for k in range(roles)]
doc += ["    assignments:"]
for i in range(users):
    for k in rng.sample(range(roles), 2):
        doc.append(f"      - {{role: r{k}, principal: u{i}}}")
doc += ["    policy:", "      directory: ./policy", ""]
with open(f"{out}/idplane.yaml", "w") as f:
    f.write("\n".join(doc))
