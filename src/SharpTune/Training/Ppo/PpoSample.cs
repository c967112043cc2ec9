namespace SharpTune.Training.Ppo;

/// <summary>One query and the policy's response to it, as TRL's PPOTrainer.step takes them.</summary>
public sealed record PpoSample(int[] Query, int[] Response);
