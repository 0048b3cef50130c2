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
env = make_env("metaworld-reach-v3", seed=2)
agent = GatoAgent(model, processor, env.observation_space, env.action_space, temperature=0, history_steps=1, prompt_tokens=0)
expert = SawyerReachV3Policy()
for seed in range(1000, 1010):
    obs, _ = env.reset(seed=seed); agent.reset(seed=seed)
    first, dists, err = None, [], []
    for t in range(500):
        a = agent.act(obs); e = expert.get_action(obs)
        err.append(np.abs(np.asarray(a) - e)[:3].mean())
        obs, r, term, trunc, info = env.step(a)
        d = np.linalg.norm(obs[:3] - obs[36:39]); dists.append(d)
        if info.get("success") and first is None: first = t
        if term or trunc: break
    d = np.array(dists)
    print(f"seed {seed}: first success {first}, min dist {d.min():.3f} at {d.argmin()}, dist@50 {d[min(50,len(d)-1)]:.3f} "
          f"final {d[-1]:.3f}, mean|a-expert| xyz first 50 {np.mean(err[:50]):.2f}, after 100 {np.mean(err[100:]):.2f}")
