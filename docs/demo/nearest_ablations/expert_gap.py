"""Where the model loses Meta-World push: its actions against the scripted expert's at the states it visits.

Plays the model as `evaluate` does (one timestep, no prompt, actions sampled at temperature 1; seeds 1000-1004, goal
set 2) and asks `metaworld.policies.SawyerPushV3Policy` for its action at every visited state. Per episode: the
first step the hand is within 2 cm of the puck in x-y; the steps in the grasp zone (within 2 cm in x-y and 8.5 cm in
z, where push's expert closes the gripper), the model's and the expert's mean gripper action there; the mean |model
- expert| of the x, y, z actions outside and inside that zone (the expert's clipped to [-1, 1], as the environment
clips every action; 2 is opposite saturated moves); how far the puck moved; its final distance to the goal; the
first success.

    python docs/demo/nearest_ablations/expert_gap.py MODEL_DIR
"""

import sys

import numpy as np


def main(model_dir: str, temperature: float = 1.0) -> None:
    from metaworld.policies import SawyerPushV3Policy

    from modeling_gato.agent import GatoAgent
    from modeling_gato.envs.tasks import make_env
    from modeling_gato.hub.loading import load_model

    model, processor = load_model(model_dir)
    env = make_env("metaworld-push-v3", seed=2)
    agent = GatoAgent(model, processor, env.observation_space, env.action_space, temperature=temperature,
                      history_steps=1, prompt_tokens=0)
    expert = SawyerPushV3Policy()
    print("| seed | first x-y < 2 cm | steps in grasp zone | gripper model / expert there | "
          "mean abs(model - expert) x, y, z outside / inside | puck moved | puck-goal at end | success at |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(1000, 1005):
        observation, _ = env.reset(seed=seed)
        agent.reset(seed=seed)
        puck_start = observation[4:7].copy()
        first_near = first_success = None
        outside, inside, grip_model, grip_expert, moved = [], [], [], [], 0.0
        for step in range(500):
            action = np.asarray(agent.act(observation))
            target = np.clip(expert.get_action(observation), -1.0, 1.0)
            hand, puck = observation[:3], observation[4:7]
            xy = np.linalg.norm(hand[:2] - puck[:2])
            zone = xy < 0.02 and abs(hand[2] - puck[2]) < 0.085
            if xy < 0.02 and first_near is None:
                first_near = step
            (inside if zone else outside).append(np.abs(action - target)[:3].mean())
            if zone:
                grip_model.append(action[3])
                grip_expert.append(target[3])
            observation, _, terminated, truncated, info = env.step(action)
            moved = max(moved, float(np.linalg.norm(observation[4:7] - puck_start)))
            if info.get("success") and first_success is None:
                first_success = step
            if terminated or truncated:
                break
        grip = f"{np.mean(grip_model):.2f} / {np.mean(grip_expert):.2f}" if grip_model else "-"
        error_inside = f"{np.mean(inside):.2f}" if inside else "-"
        print(f"| {seed} | {first_near} | {len(inside)} | {grip} | {np.mean(outside):.2f} / {error_inside} | "
              f"{moved:.3f} m | {np.linalg.norm(observation[4:7] - observation[36:39]):.3f} m | {first_success} |",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1.0)
