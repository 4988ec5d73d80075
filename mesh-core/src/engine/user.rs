//! User messages: sending to one peer or all, and delivering received ones in order
//! (see `messages`).

use std::net::SocketAddr;

use crate::error::Error;
use crate::event::Event;
use crate::messages::{Arrival, MAX_QUEUED_FRAGMENTS};
use crate::time::Now;
use crate::wire::{self, Message, UserMessage};

use super::Engine;

impl Engine {
    /// Queues `data` for the alive peer named `peer_id`, delivered reliably and in send
    /// order to its `on_message` callbacks. Messages are not stored in the state.
    ///
    /// Errors: [`Error::MessageTooLarge`] past `max_value_size`, [`Error::PeerNotFound`]
    /// for a node id not among the alive peers, [`Error::QueueFull`] when too much is
    /// already queued for that peer.
    pub fn send_message(&mut self, _now: Now, peer_id: &str, data: &[u8]) -> Result<(), Error> {
        self.check_message(data)?;
        let addr = self
            .members
            .reachable()
            .find(|m| m.node_id.as_deref() == Some(peer_id))
            .map(|m| m.addr)
            .ok_or_else(|| Error::PeerNotFound {
                node_id: peer_id.to_owned(),
            })?;
        self.queue_user_message(addr, data)
            .then_some(())
            .ok_or_else(|| Error::QueueFull {
                node_id: peer_id.to_owned(),
            })
    }

    /// Queues `data` for every alive peer; returns how many peers it was queued for
    /// (peers whose queue is full are skipped). Errors with [`Error::MessageTooLarge`]
    /// past `max_value_size`.
    pub fn broadcast_message(&mut self, _now: Now, data: &[u8]) -> Result<usize, Error> {
        self.check_message(data)?;
        let peers: Vec<SocketAddr> = self
            .members
            .reachable()
            .filter(|m| m.node_id.is_some())
            .map(|m| m.addr)
            .collect();
        Ok(peers
            .into_iter()
            .filter(|&addr| self.queue_user_message(addr, data))
            .count())
    }

    /// Node ids of the peers messages can be sent to now, in address order.
    pub fn message_peers(&self) -> Vec<String> {
        self.members
            .reachable()
            .filter_map(|m| m.node_id.clone())
            .collect()
    }

    fn check_message(&self, data: &[u8]) -> Result<(), Error> {
        if data.len() > self.config.max_value_size {
            return Err(Error::MessageTooLarge {
                size: data.len(),
                max: self.config.max_value_size,
            });
        }
        Ok(())
    }

    /// Queues one message on the link to `addr`; returns whether there was room.
    fn queue_user_message(&mut self, addr: SocketAddr, data: &[u8]) -> bool {
        let Some(link) = self.links.get_mut(&addr) else {
            return false;
        };
        if link.channel.queued_fragments() >= MAX_QUEUED_FRAGMENTS {
            return false;
        }
        let bytes = wire::encode_message(&Message::User(UserMessage {
            seq: link.messages.peek_send(),
            data: data.to_vec(),
        }));
        if !link.channel.send_message(&bytes) {
            return false;
        }
        link.messages.commit_send();
        self.counters.messages_sent += 1;
        self.touched.insert(addr);
        true
    }

    /// How long a gap in a peer's messages may stall delivery before it is skipped: past
    /// the time the transport keeps retrying a datagram and a partial message.
    pub(super) fn message_gap_us(&self) -> u64 {
        2 * self.limits.min_give_up_us + self.limits.reassembly_timeout_us
    }

    /// A user message from the peer at `from`, delivered with those it releases.
    pub(super) fn on_user_message(&mut self, now: Now, from: SocketAddr, message: UserMessage) {
        let sender = self.members.get(&from).and_then(|m| m.node_id.clone());
        let (Some(sender), Some(link)) = (sender, self.links.get_mut(&from)) else {
            // Not identified yet: nobody to name as its sender.
            self.counters.dropped.messages += 1;
            return;
        };
        let mut ready = Vec::new();
        if link
            .messages
            .receive(message.seq, message.data, now.mono_us, &mut ready)
            == Arrival::Dropped
        {
            self.counters.dropped.messages += 1;
        }
        self.touched.insert(from);
        self.deliver_messages(&sender, ready);
    }

    /// Skips a stalled gap in the messages of the peer at `addr`, if due.
    pub(super) fn message_timeout(&mut self, now_us: u64, addr: SocketAddr) {
        let gap_us = self.message_gap_us();
        let Some(link) = self.links.get_mut(&addr) else {
            return;
        };
        let mut ready = Vec::new();
        let lost = link.messages.on_timeout(now_us, gap_us, &mut ready);
        self.counters.dropped.messages += lost;
        if ready.is_empty() {
            return;
        }
        match self.members.get(&addr).and_then(|m| m.node_id.clone()) {
            Some(sender) => self.deliver_messages(&sender, ready),
            None => self.counters.dropped.messages += ready.len() as u64,
        }
    }

    fn deliver_messages(&mut self, sender: &str, ready: Vec<Vec<u8>>) {
        for data in ready {
            self.counters.messages_received += 1;
            // Always queued, whether or not state events are: the driver decides.
            self.events.push_back(Event::Message {
                sender: sender.to_owned(),
                data,
            });
        }
    }

    /// Counts a received message the driver had to drop (its callback backlog is full).
    pub fn count_dropped_message(&mut self) {
        self.counters.dropped.messages += 1;
    }
}
