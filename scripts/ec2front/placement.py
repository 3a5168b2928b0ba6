"""Placement groups, which moto 5 does not have: the front keeps them (name -> strategy, id,
tags) and the group each instance was launched into; DeletePlacementGroup is refused while a
live instance is in the group, as AWS does. What does not belong here: launching into a group
(front.py checks the group exists and records the instances)."""
from dataclasses import dataclass, field
import time
import uuid

from .common import EC2_NS, LOCK, error_xml

ACTIONS = ("CreatePlacementGroup", "DescribePlacementGroups", "DeletePlacementGroup")


@dataclass
class Group:
    strategy: str
    id: str
    tags: dict = field(default_factory=dict)


class Placement:
    def __init__(self):
        self.groups = {}  # name -> Group
        self.placed = {}  # instance id -> group name

    def known(self, name):
        with LOCK:
            return name in self.groups

    def place(self, ids, name):
        with LOCK:
            for i in ids:
                self.placed[i] = name

    def placed_copy(self):
        with LOCK:
            return dict(self.placed)

    def call(self, action, params, instances):
        """(status, XML answer) of a placement-group call; `instances` tells which placed
        instances have finished terminating."""
        name = params.get("GroupName", "")
        with LOCK:
            if action == "CreatePlacementGroup":
                return self._create(name, params)
            if action == "DeletePlacementGroup":
                return self._delete(name, instances)
            return self._describe(params)

    def _create(self, name, params):
        if name in self.groups:
            return 400, error_xml("InvalidPlacementGroup.Duplicate",
                                  "The placement group '%s' already exists." % name)
        tags, i = {}, 1
        while "TagSpecification.1.Tag.%d.Key" % i in params:
            tags[params["TagSpecification.1.Tag.%d.Key" % i]] = \
                params.get("TagSpecification.1.Tag.%d.Value" % i, "")
            i += 1
        self.groups[name] = Group(params.get("Strategy", "cluster"),
                                  "pg-" + uuid.uuid4().hex[:17], tags)
        return 200, self._xml("CreatePlacementGroup", [name], "placementGroup")

    def _delete(self, name, instances):
        if name not in self.groups:
            return 400, error_xml("InvalidPlacementGroup.Unknown",
                                  "The Placement Group '%s' is unknown." % name)
        now = time.monotonic()

        def gone(i):
            r = instances.get(i)
            return r is not None and r.shutdown_until and r.shutdown_until <= now
        live = [i for i, g in self.placed.items() if g == name and not gone(i)]
        if live:
            return 400, error_xml("InvalidPlacementGroup.InUse",
                                  "There are instances in placement group %s" % name)
        del self.groups[name]
        return 200, self._xml("DeletePlacementGroup", [], None)

    def _describe(self, params):
        names = [v for k, v in params.items() if k.startswith("GroupName.")]
        unknown = [n for n in names if n not in self.groups]
        if unknown:
            return 400, error_xml("InvalidPlacementGroup.Unknown",
                                  "The Placement Group '%s' is unknown." % unknown[0])
        chosen = names or sorted(self.groups)
        i = 1
        while "Filter.%d.Name" % i in params:
            fname = params["Filter.%d.Name" % i]
            values = [v for k, v in params.items() if k.startswith("Filter.%d.Value." % i)]
            if fname == "group-name":
                chosen = [n for n in chosen if n in values]
            elif fname.startswith("tag:"):
                chosen = [n for n in chosen if self.groups[n].tags.get(fname[4:]) in values]
            elif fname == "strategy":
                chosen = [n for n in chosen if self.groups[n].strategy in values]
            i += 1
        return 200, self._xml("DescribePlacementGroups", chosen, "placementGroupSet")

    def _xml(self, action, names, wrapper):
        """Placement groups as EC2 answers them (called with LOCK held)."""
        def group(n):
            g = self.groups[n]
            tags = "".join("<item><key>%s</key><value>%s</value></item>" % (k, v)
                           for k, v in g.tags.items())
            return ("<groupName>%s</groupName><state>available</state><strategy>%s</strategy>"
                    "<groupId>%s</groupId><tagSet>%s</tagSet>" % (n, g.strategy, g.id, tags))
        if wrapper == "placementGroup":
            inner = "<placementGroup>%s</placementGroup>" % group(names[0])
        elif wrapper:
            inner = "<%s>%s</%s>" % (wrapper, "".join("<item>%s</item>" % group(n) for n in names),
                                     wrapper)
        else:
            inner = "<return>true</return>"
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s"><requestId>%s'
                "</requestId>%s</%sResponse>" % (action, EC2_NS, uuid.uuid4(), inner, action)
                ).encode()
