"""Ten greedy reach episodes of a generalist (current timestep, no prompt; goal set 2, seeds 1000-1009): first
success, closest approach, distance at step 50 and at the end, and the mean |model - expert| action on x, y, z.

    python diagnose_reach_episodes.py MODEL_DIR
"""

import sys

import numpy as np
from metaworld.policies import SawyerReachV3Policy

from modeling_gato.agent import GatoAgent
from modeling_gato.envs.tasks import make_env
from modeling_gato.hub.loading import load_model

model, processor = load_model(sys.argv[1])
env = make_env("metaworld-reach-v3", seed=2)  # evaluate's --env-seed 2
agent = GatoAgent(model, processor, env.observation_space, env.action_space, temperature=0, history_steps=1,
                  prompt_tokens=0)
expert = SawyerReachV3Policy()
for seed in range(1000, 1010):
    observation, _ = env.reset(seed=seed)
    agent.reset(seed=seed)
    first, distances, errors = None, [], []
    for step in range(500):
        action = agent.act(observation)
        errors.append(np.abs(np.asarray(action) - expert.get_action(observation))[:3].mean())
        observation, _, terminated, truncated, info = env.step(action)
        distances.append(np.linalg.norm(observation[:3] - observation[36:39]))
        if info.get("success") and first is None:
            first = step
        if terminated or truncated:
            break
    d = np.array(distances)
    print(f"seed {seed}: first success {first}, min dist {d.min():.3f} at {d.argmin()}, "
          f"dist@50 {d[min(50, len(d) - 1)]:.3f} final {d[-1]:.3f}, mean|a-expert| xyz first 50 {np.mean(errors[:50]):.2f}, "
          f"after 100 {np.mean(errors[100:]):.2f}")
