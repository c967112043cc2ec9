namespace SharpTune.Data;

/// <summary>
/// One dataset record that cannot be used, with the reason only (e.g. <c>'output' is missing</c>); the loader puts
/// the file and record in front of it.
/// </summary>
public sealed class InvalidRecordException(string message) : Exception(message);
