"""Teacher-forced action slots on expert push states (goal set 2, seeds 1000-1004, first 120 steps, current
timestep, no prompt): each slot's greedy value given the expert's earlier slots; correlation of model slot k with
expert dim j, and the mean absolute error per slot."""

import sys

import numpy as np
from metaworld.policies import SawyerPickPlaceV3Policy, SawyerPushV3Policy, SawyerReachV3Policy

from modeling_gato.agent import GatoAgent, _append_action, _choose_tokens
from modeling_gato.envs.tasks import make_env
from modeling_gato.hub.loading import load_model

model, processor = load_model(sys.argv[1])
task = sys.argv[2]
zero = "--zero-previous" in sys.argv
env = make_env(task, seed=2)
expert = {"push": SawyerPushV3Policy, "reach": SawyerReachV3Policy, "pick-place": SawyerPickPlaceV3Policy}[
    task.split("-", 1)[1].rsplit("-", 1)[0]
]()
agent = GatoAgent(
    model, processor, env.observation_space, env.action_space, temperature=0, history_steps=1, prompt_tokens=0
)
M, E = [], []
for seed in range(1000, 1005):
    o, _ = env.reset(seed=seed)
    for _ in range(120):
        e = np.clip(expert.get_action(o), -1, 1)
        seen = o.copy()
        if zero:
            seen[18:36] = 0
        agent.reset(seed=seed)
        obs = processor.tokenize_observation({"continuous_observations": seen.astype(np.float32)})
        agent.steps.append(obs)
        etok = processor.encode_action(e, env.action_space)
        chosen = []
        for k, (low, high) in enumerate(agent.ranges):
            tok = _choose_tokens(model, agent._next_hidden()[None], low, high, 0, [agent.generator])[0]
            chosen.append(tok)
            agent.steps[-1] = _append_action(agent.steps[-1], int(etok[k]))
        M.append(np.asarray(processor.decode_action(np.asarray(chosen), env.action_space)))
        E.append(e)
        o, *_ = env.step(e)
M, E = np.array(M), np.array(E)
print("MAE per slot", np.abs(M - E).mean(0).round(3))
print("corr model slot k (rows) vs expert dim j (cols)")
for k in range(4):
    print(
        k,
        [
            round(float(np.corrcoef(M[:, k], E[:, j])[0, 1]), 2) if M[:, k].std() > 0 and E[:, j].std() > 0 else None
            for j in range(4)
        ],
    )
