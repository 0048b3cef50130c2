"""What the demo generalist does on Meta-World reach: its greedy action (current timestep, no prompt, as `evaluate`
acts) beside the expert's, in closed loop on the evaluation's goal set and on states of its own training episodes.

    python diagnose_reach.py MODEL_DIR DATA_DIR
"""

import sys

import numpy as np
import torch
from datasets import load_from_disk
from metaworld.policies import SawyerReachV3Policy

from modeling_gato.agent import GatoAgent
from modeling_gato.envs.tasks import make_env
from modeling_gato.hub.loading import load_model

model, processor = load_model(sys.argv[1])
env = make_env("metaworld-reach-v3", seed=2)  # evaluate's --env-seed 2
agent = GatoAgent(model, processor, env.observation_space, env.action_space, temperature=0, history_steps=1)
expert = SawyerReachV3Policy()
for seed in (1000, 1001):
    observation, _ = env.reset(seed=seed)
    agent.reset(seed=seed)
    for step in range(60):
        action = agent.act(observation)
        if step % 10 == 0:
            distance = np.linalg.norm(observation[:3] - observation[36:39])
            print(f"closed loop, seed {seed}, step {step}: hand-goal {distance:.3f} m, model {np.round(action, 2)}, "
                  f"expert {np.round(expert.get_action(observation), 2)}")
        observation, *_ = env.step(action)
rows = load_from_disk(f"{sys.argv[2]}/episodes/metaworld-reach-v3")
with torch.no_grad():
    for index in (0, 5):
        observations, actions = np.asarray(rows[index]["continuous_observations"], np.float32), rows[index]["continuous_actions"]
        for step in (0, 20, 40):
            agent.reset(seed=0)
            print(f"training episode {index}, step {step}: model {np.round(agent.act(observations[step]), 2)}, "
                  f"recorded {np.round(actions[step], 2)}")
