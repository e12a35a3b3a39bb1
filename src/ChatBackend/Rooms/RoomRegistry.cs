namespace ChatBackend.Rooms;

/// <summary>
/// All rooms of this backend. Rooms exist only while they have members. Join and leave take the registry
/// lock and then the room lock (always in that order, so they cannot deadlock); broadcasts take only the
/// room lock, so rooms never slow each other down.
/// </summary>
internal sealed class RoomRegistry
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Room> _rooms = new(StringComparer.Ordinal);

    /// <summary>
    /// Adds the member and queues its welcome before any broadcast can reach it, so the welcome is always
    /// the first message a member sees.
    /// </summary>
    /// <param name="welcome">Builds the welcome from the member count including the new member.</param>
    /// <returns>The member count including the new member.</returns>
    public int Join(string roomName, RoomMember member, Func<int, ReadOnlyMemory<byte>> welcome)
    {
        lock (_gate)
        {
            if (!_rooms.TryGetValue(roomName, out var room))
            {
                room = new Room();
                _rooms.Add(roomName, room);
            }

            return room.Add(member, welcome);
        }
    }

    public void Leave(string roomName, RoomMember member)
    {
        lock (_gate)
        {
            if (_rooms.TryGetValue(roomName, out var room) && room.Remove(member) == 0)
            {
                _rooms.Remove(roomName);
            }
        }
    }

    /// <summary>Sends to every member of the room, including the sender.</summary>
    /// <returns>Members whose queue overflowed during this broadcast (usually empty).</returns>
    public IReadOnlyList<RoomMember> Broadcast(string roomName, ReadOnlyMemory<byte> utf8Text)
    {
        Room? room;
        lock (_gate)
        {
            _rooms.TryGetValue(roomName, out room);
        }

        return room?.Broadcast(utf8Text) ?? [];
    }

    /// <summary>One room's membership. Enqueueing happens under the lock so every member sees the same order.</summary>
    private sealed class Room
    {
        private readonly Lock _gate = new();
        private readonly List<RoomMember> _members = [];

        public int Add(RoomMember member, Func<int, ReadOnlyMemory<byte>> welcome)
        {
            lock (_gate)
            {
                _members.Add(member);
                member.EnqueueOrOverflow(welcome(_members.Count));
                return _members.Count;
            }
        }

        public int Remove(RoomMember member)
        {
            lock (_gate)
            {
                _members.Remove(member);
                return _members.Count;
            }
        }

        public IReadOnlyList<RoomMember> Broadcast(ReadOnlyMemory<byte> utf8Text)
        {
            List<RoomMember>? overflowed = null;
            lock (_gate)
            {
                // Enqueueing never blocks, so holding the lock here costs microseconds, not a slow peer's latency.
                foreach (var member in _members)
                {
                    if (member.EnqueueOrOverflow(utf8Text))
                    {
                        (overflowed ??= []).Add(member);
                    }
                }
            }

            return (IReadOnlyList<RoomMember>?)overflowed ?? [];
        }
    }
}
