"""Does the model's reach action depend on the goal tokens? Play the expert, and at its states ask the greedy
model (current timestep, no prompt) for the action with the true goal and with the goal of another episode."""

import sys

import numpy as np
from metaworld.policies import SawyerPushV3Policy, SawyerReachV3Policy

from modeling_gato.agent import GatoAgent
from modeling_gato.envs.tasks import make_env
from modeling_gato.hub.loading import load_model

model, processor = load_model(sys.argv[1])
task = sys.argv[2] if len(sys.argv) > 2 else "metaworld-reach-v3"
env = make_env(task, seed=2)
expert = SawyerReachV3Policy() if "reach" in task else SawyerPushV3Policy()
agent = GatoAgent(
    model, processor, env.observation_space, env.action_space, temperature=0, history_steps=1, prompt_tokens=0
)
goals = []
for seed in range(1000, 1010):
    o, _ = env.reset(seed=seed)
    goals.append(o[36:39].copy())
print("goals", np.round(goals, 3))
rows = []
for i, seed in enumerate(range(1000, 1006)):
    o, _ = env.reset(seed=seed)
    for step in range(60):
        a_exp = expert.get_action(o)
        if step % 6 == 0:
            agent.reset(seed=seed)
            a_true = np.asarray(agent.act(o))
            o2 = o.copy()
            o2[36:39] = goals[(i + 5) % 10]
            agent.reset(seed=seed)
            a_other = np.asarray(agent.act(o2))
            a_exp2 = expert.get_action(o2)
            rows.append((seed, step, a_exp[:3], a_true[:3], a_exp2[:3], a_other[:3]))
        o, r, term, trunc, info = env.step(a_exp)
for seed, step, e, t, e2, t2 in rows:
    print(
        f"{seed} {step:3d} expert {np.round(e, 2)} model {np.round(t, 2)} | other goal: expert {np.round(e2, 2)} model {np.round(t2, 2)}"
    )
e, t, e2, t2 = (np.array([r[k] for r in rows]) for k in (2, 3, 4, 5))
print("mean |model-expert| true goal", np.abs(t - e).mean().round(3), " other goal", np.abs(t2 - e2).mean().round(3))
print(
    "expert change with goal", np.abs(e2 - e).mean().round(3), " model change with goal", np.abs(t2 - t).mean().round(3)
)
