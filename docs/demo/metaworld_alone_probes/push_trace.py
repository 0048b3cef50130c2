"""One model's push episodes, sampled (temperature 1, current timestep, no prompt; goal set 2): every 10 steps the
hand-puck distance (xy, z), the puck-goal distance, the model's and the expert's action at that state."""

import sys

import numpy as np
from metaworld.policies import SawyerPushV3Policy

from modeling_gato.agent import GatoAgent
from modeling_gato.envs.tasks import make_env
from modeling_gato.hub.loading import load_model

model, processor = load_model(sys.argv[1])
zero = "--zero-previous" in sys.argv
env = make_env("metaworld-push-v3", seed=2)
agent = GatoAgent(
    model, processor, env.observation_space, env.action_space, temperature=1, history_steps=1, prompt_tokens=0
)
expert = SawyerPushV3Policy()
for seed in (1000, 1001):
    o, _ = env.reset(seed=seed)
    agent.reset(seed=seed)
    for step in range(150):
        seen = o.copy()
        if zero:
            seen[18:36] = 0
        a = np.asarray(agent.act(seen))
        e = expert.get_action(o)
        if step % 10 == 0:
            hp = o[:3] - o[4:7]
            print(
                f"{seed} {step:3d} hand-puck xy {np.linalg.norm(hp[:2]):.3f} z {hp[2]:+.3f} puck-goal "
                f"{np.linalg.norm(o[4:7] - o[36:39]):.3f} grip {o[3]:.2f} | model {np.round(a, 2)} expert {np.round(e, 2)}"
            )
        o, r, term, trunc, info = env.step(a)
        if term or trunc:
            break
