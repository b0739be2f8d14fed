"""Every MediaPipe face-mesh index the code uses, named once (468 landmarks, no iris).

    from realtime.face import mesh
    eye_xy = landmarks_xy[list(mesh.RIGHT_EYE)].mean(axis=0)

"Right" and "left" are the subject's: the right eye is on the image's left. Index tuples run
left to right in the image where order matters (eye corners, outlines).
"""

from __future__ import annotations

import itertools

NUM_LANDMARKS = 468
"""Landmarks per face (the mesh without ``refine_landmarks``' iris points)."""

RIGHT_EYE = (33, 133, 159, 145)
"""The subject's right eye: its outer and inner corner (image order), upper and lower lid."""
LEFT_EYE = (362, 263, 386, 374)
"""The subject's left eye: its inner and outer corner (image order), upper and lower lid."""
NOSE_BRIDGE = 6
"""The bridge of the nose between the eyes."""
NOSE_TIP = 1
"""The tip of the nose: the alignment's reference point and the nose keypoint of a face
followed without the detector.

Index 4, just above it, is the other candidate. Over 820 faces (celeba, celebahq, masked
photos, the hamilton and masked webcam clips), the detector's nose keypoint lies a median 4.6%
of the box from index 1 and 5.2% from index 4 (4 is closer on the masked photos and the
hamilton clip, by about 0.5%; 1 on the other three sets). The alignment's canonical layout and
the bundled weights were made with index 1."""
SUBNASALE = 2
"""Where the nose meets the upper lip."""
UPPER_LIP = 0
"""The top of the upper lip, on the midline."""
INNER_LIPS = (13, 14)
"""The inner edges of the upper and lower lip on the midline; their mean is the mouth centre
(the detector's mouth keypoint)."""
MOUTH_CORNERS = (61, 291)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84,
              181, 91, 146)
"""The lips' outer edge, all round."""
CHIN = 152
CHEEKBONES = (50, 280)
EAR_TRAGIONS = (127, 356)
"""The points nearest (median 9% of the box) the detector's ear keypoints."""
OUTLINE_AT_EYES = (234, 454)
"""The face outline level with the eyes, on the image's left and right."""
JAW_OUTLINE = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
               377, 400, 378, 379, 365, 397, 288, 361, 323, 454)  # fmt: skip
"""The face outline from beside one eye, under the chin, to beside the other (image order)."""

FLOW_POINTS = (
    33, 133, 362, 263,  # eye corners
    159, 145, 386, 374,  # upper and lower lids
    70, 105, 107, 336, 334, 300,  # eyebrows
    168, 6, 197, 195, 4,  # nose bridge to tip
    116, 345, 50, 280,  # cheekbones
    127, 356, 234, 454, 162, 389,  # outline beside the eyes
)
"""The points optical flow follows: corners and edges with texture that no face mask covers,
spread over the face so that a similarity fit is well posed. Adding 13 jaw-outline points (93,
323, 132, 361, 58, 288, 172, 397, 150, 379, 152, 148, 377) made the flow check fail more often
and, on turned faces in the hamilton clip, the fit worse (5% vs 4% of the eye distance from the
mesh's landmarks)."""
TEMPLATE_ANCHORS = (93, 197, 323, 172, 152, 397)
"""Where training pins the MaskTheFace template anchors a..f: the face outline just below eye
level on the image's left, the middle of the nose bridge, the outline on the right, the jaw on
the left (about two thirds of the way down to the chin), the chin, the jaw on the right. With
the outline at eye level (234/454) a template covered an eye centre in 10% of the faces; with
93/323 in 1%, and the mouth in 99%."""
SURGICAL_MASK_TOP = (234, 118, 197, 347, 454)
"""The upper edge of the demo clip's painted surgical mask, image left to right: the cheek side
by the ear, under the eye, the nose bridge, under the other eye, the other side."""
LIPS_EDGES = ((0, 267), (13, 312), (14, 317), (17, 314), (37, 0), (39, 37), (40, 39), (61, 146),
              (61, 185), (78, 95), (78, 191), (80, 81), (81, 82), (82, 13), (84, 17), (87, 14),
              (88, 178), (91, 181), (95, 88), (146, 91), (178, 87), (181, 84), (185, 40),
              (191, 80), (267, 269), (269, 270), (270, 409), (310, 415), (311, 310),
              (312, 311), (314, 405), (317, 402), (318, 324), (321, 375), (324, 308),
              (375, 291), (402, 318), (405, 321), (409, 291), (415, 308))  # fmt: skip
"""The lips' outer and inner edges as mesh edges (MediaPipe's FACEMESH_LIPS)."""
NOSE_EDGES = ((1, 19), (2, 326), (4, 1), (4, 45), (5, 4), (6, 197), (19, 94), (45, 220),
              (48, 64), (64, 98), (94, 2), (97, 2), (98, 97), (115, 48), (168, 6), (195, 5),
              (197, 195), (220, 115), (275, 4), (278, 344), (294, 278), (326, 327),
              (327, 294), (344, 440), (440, 275))  # fmt: skip
"""The nose's ridge, tip, wings and base as mesh edges (MediaPipe's FACEMESH_NOSE)."""
GUIDE_EDGES = (LIPS_EDGES + NOSE_EDGES
               + tuple(itertools.pairwise(JAW_OUTLINE)))
"""What the generator's landmark guide draws (``realtime.face.guide``): lips, nose and jaw,
the lower face a covering hides and the face mesh still places."""
