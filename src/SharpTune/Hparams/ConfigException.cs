namespace SharpTune.Hparams;

/// <summary>A config key or value is unusable; the message names the key, the problem and where the value came from.</summary>
public sealed class ConfigException(string message) : Exception(message);
