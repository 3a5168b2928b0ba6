"""The local cloud's EC2 front: what moto_server does not do that AWS does (see front.py).

One module per concern, along the front's own seams:

* ``common``   -- the one lock, EC2's XML and error documents, small helpers;
* ``faults``   -- each caller's configured faults, token buckets and counters, and the
                  choice of the fault (if any) a call gets;
* ``machines`` -- one sshd per instance address, booting, halting, baking;
* ``placement``-- placement groups, which moto 5 does not have;
* ``ssm``      -- Systems Manager's Run Command and managed nodes, run on the machines as
                  their agents would (moto runs nothing);
* ``cloud``    -- the front's state (instances' timings, client tokens, callers, placement)
                  as one object, records as dataclasses;
* ``front``    -- the HTTP handler: a call is parsed once into a ``Call``, faults chosen,
                  adjusted, sent to moto one at a time, and its answer made AWS's.

Nothing here talks to anything but loopback.
"""
