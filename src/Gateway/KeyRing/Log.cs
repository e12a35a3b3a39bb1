namespace Gateway.KeyRing;

internal static partial class Log
{
    [LoggerMessage(EventId = 1010, Level = LogLevel.Information,
        Message = "Data protection key ring in {Directory}: no usable key, created key {KeyId} (expires {Expires:u}) for every replica sharing the directory")]
    public static partial void KeyCreated(ILogger logger, string directory, Guid keyId, DateTimeOffset expires);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Debug, Message = "Data protection key ring in {Directory}: key {KeyId} is in use ({Keys} keys in the ring)")]
    public static partial void KeyFound(ILogger logger, string directory, Guid keyId, int keys);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Information,
        Message = "Data protection key ring in {Directory}: another gateway holds its lock ({LockFile}); waiting up to {Wait} for it to finish")]
    public static partial void LockContended(ILogger logger, string directory, string lockFile, TimeSpan wait);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Warning,
        Message = "Data protection key ring in {Directory}: could not lock it ({Error}); going on without the lock. Replicas that start together on an empty key ring may each create a key and not honour each other's affinity cookies: create the first key before scaling out (start one replica first)")]
    public static partial void LockUnavailable(ILogger logger, string directory, string error);
}
