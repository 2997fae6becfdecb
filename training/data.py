"""Loader for the simulator datasets (`videovla sim record`, format `videovla-sim-v1`, documented at
the top of src/sim/dataset.rs).

A training sample at action k of an episode is the 49 frames k*S ..= (k+6)*S (S = substeps = 8)
and the actions k .. k+5, padded past the end of the episode by repeating the last frame / action.
Shards are opened lazily (safetensors `safe_open`), so a multi-GB dataset costs no RAM up front.
"""

from __future__ import annotations

import json
import os

import numpy as np
from safetensors import safe_open

FORMAT = "videovla-sim-v1"
ARM_DIMS = 6  # [droll, dpitch, dyaw, dx, dy, dz] normalised; the gripper (dim 6) stays 0/1


class SimDataset:
    def __init__(self, root: str, num_frames: int = 49, action_len: int = 6):
        self.root = root
        with open(os.path.join(root, "meta.json")) as f:
            self.meta = json.load(f)
        assert self.meta["format"] == FORMAT, self.meta["format"]
        self.episodes = self.meta["episodes"]
        self.substeps = int(self.meta["substeps"])
        self.size = int(self.meta["size"])
        self.num_frames = num_frames
        self.action_len = action_len
        assert (num_frames - 1) == action_len * self.substeps, "49 frames = 6 actions x 8 sub-frames + 1"
        self._shards: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.episodes)

    def _shard(self, i: int):
        if i not in self._shards:
            self._shards[i] = safe_open(os.path.join(self.root, self.meta["shards"][i]), framework="numpy")
        return self._shards[i]

    def episode_frames(self, e: int) -> np.ndarray:
        ep = self.episodes[e]
        s = self._shard(ep["shard"]).get_slice("frames")
        return s[ep["frame_start"]: ep["frame_start"] + ep["frame_count"]]

    def episode_actions(self, e: int) -> np.ndarray:
        ep = self.episodes[e]
        s = self._shard(ep["shard"]).get_slice("actions")
        return np.asarray(s[ep["action_start"]: ep["action_start"] + ep["action_count"]], dtype=np.float32)

    def window_count(self, e: int) -> int:
        """Training windows of episode e: one per action, padded past the end by repetition — except
        in an episode cut short (`sim record --max-actions`), whose recording stops mid-motion: there
        only the windows whose 6 actions were all recorded (k <= action_count - 6)."""
        ep = self.episodes[e]
        n = int(ep["action_count"])
        cut = int(self.meta.get("max_actions", 0) or 0)
        if cut and not ep["success"] and n >= cut:
            return max(n - self.action_len + 1, 0)
        return n

    def windows(self) -> list[tuple[int, int]]:
        """Every (episode, k) training window, k < window_count(e)."""
        return [(e, k) for e in range(len(self.episodes)) for k in range(self.window_count(e))]

    def window(self, e: int, k: int, frames: np.ndarray | None = None, actions: np.ndarray | None = None) -> dict:
        """frames (49,H,W,3) u8, actions (6,7) f32 (raw), instruction; padded by repetition."""
        ep = self.episodes[e]
        frames = self.episode_frames(e) if frames is None else frames
        actions = self.episode_actions(e) if actions is None else actions
        fi = np.minimum(k * self.substeps + np.arange(self.num_frames), ep["frame_count"] - 1)
        ai = np.minimum(k + np.arange(self.action_len), ep["action_count"] - 1)
        return {"frames": frames[fi], "actions": actions[ai], "instruction": ep["instruction"],
                "episode": e, "k": k, "task": ep["task"]}

    def clip(self, e: int, start: int, n: int, frames: np.ndarray | None = None) -> np.ndarray:
        """n consecutive frames from `start` (padded by repeating the last frame), u8 (n,H,W,3)."""
        ep = self.episodes[e]
        frames = self.episode_frames(e) if frames is None else frames
        return frames[np.minimum(start + np.arange(n), ep["frame_count"] - 1)]

    def all_actions(self) -> np.ndarray:
        return np.concatenate([self.episode_actions(e) for e in range(len(self))])


def to_pixels(frames_u8: np.ndarray):
    """(..., F, H, W, 3) u8 -> torch (..., 3, F, H, W) float in [-1, 1] (the released convention)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames_u8)).float() / 127.5 - 1.0
    return x.movedim(-1, -4)


# ------------------------------------------------------------------------------------------------
# action statistics (OpenVLA / CogACT `dataset_statistics.json` format) and normalisation


def action_statistics(actions: np.ndarray) -> dict:
    a = actions.astype(np.float64)
    return {
        "q01": np.quantile(a, 0.01, axis=0).tolist(),
        "q99": np.quantile(a, 0.99, axis=0).tolist(),
        "mask": [True] * ARM_DIMS + [False] * (a.shape[1] - ARM_DIMS),
        "mean": a.mean(0).tolist(),
        "std": a.std(0).tolist(),
        "min": a.min(0).tolist(),
        "max": a.max(0).tolist(),
    }


def normalize_actions(a: np.ndarray, stats: dict) -> np.ndarray:
    """Masked dims: 2 (a - q01) / (q99 - q01) - 1 clipped to [-1, 1] (0 where q99 == q01);
    unmasked dims unchanged. Inverse: `unnormalize_actions` (what the Rust policy does)."""
    q01, q99 = np.asarray(stats["q01"], np.float32), np.asarray(stats["q99"], np.float32)
    mask = np.asarray(stats["mask"], bool)
    rng = q99 - q01
    safe = np.where(rng > 1e-8, rng, 1.0)
    n = np.clip(2 * (a - q01) / safe - 1, -1, 1)
    n = np.where(rng > 1e-8, n, 0.0)
    return np.where(mask, n, a).astype(np.float32)


def unnormalize_actions(n: np.ndarray, stats: dict) -> np.ndarray:
    """OpenVLA: a = 0.5 (n + 1) (q99 - q01) + q01 on masked dims (n clipped to [-1, 1] first)."""
    q01, q99 = np.asarray(stats["q01"], np.float32), np.asarray(stats["q99"], np.float32)
    mask = np.asarray(stats["mask"], bool)
    a = 0.5 * (np.clip(n, -1, 1) + 1) * (q99 - q01) + q01
    return np.where(mask, a, n).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# synthetic dataset in the same format (tests)


def write_synthetic(root: str, episodes=((3, "pick up the red cube"), (1, "put the blue ball on the green bar")),
                    size: int = 16, substeps: int = 8, seed: int = 0) -> None:
    """Frames encode (episode, frame index) in pixel values so windows can be checked exactly:
    pixel [0,0,0] = local frame index, [0,0,1] = episode; actions[a] = episode*100 + a."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    frames, actions, fe, ae, metas = [], [], [], [], []
    for e, (n_act, instr) in enumerate(episodes):
        n_fr = 1 + substeps * n_act
        f = rng.integers(0, 256, (n_fr, size, size, 3), dtype=np.uint8)
        f[:, 0, 0, 0] = np.arange(n_fr)
        f[:, 0, 0, 1] = e
        a = np.tile((e * 100 + np.arange(n_act, dtype=np.float32))[:, None], (1, 7))
        a[:, 6] = (np.arange(n_act) % 2).astype(np.float32)
        metas.append({"episode": e, "shard": 0, "frame_start": sum(len(x) for x in frames), "frame_count": n_fr,
                      "action_start": sum(len(x) for x in actions), "action_count": n_act, "task": "pick",
                      "split": "train", "seed": seed + e, "instruction": instr, "success": True,
                      "objects": [], "target": 0, "reference": None})
        frames.append(f)
        actions.append(a)
        fe.append(np.full(n_fr, e, np.int64))
        ae.append(np.full(n_act, e, np.int64))
    save_file({"frames": np.concatenate(frames), "actions": np.concatenate(actions),
               "ee_pose": np.zeros((sum(len(x) for x in frames), 7), np.float32),
               "frame_episode": np.concatenate(fe), "action_episode": np.concatenate(ae)},
              os.path.join(root, "shard-00000.safetensors"))
    with open(os.path.join(root, "meta.json"), "w") as f:
        json.dump({"format": FORMAT, "size": size, "substeps": substeps, "chunk": 6, "execute": 3,
                   "action_convention": "", "shards": ["shard-00000.safetensors"], "episodes": metas}, f)
